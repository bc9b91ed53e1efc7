// Job: the faults, overlapping, each kind on its own schedule drawn from the run's seed: the store stopped and started,
// Bridge killed with SIGKILL and started again (as Restart=always would), reloads that move a user between Spool and
// Legacy, the spool's file system full for a while, IMAP logins to the store (each collects that user's spool), the
// IMAP reader expunging some of the Spool user's mail (what it expunged goes to the ledger), and Bridge's RSS sampled.
// The seed fixes every schedule and choice; the machine's timing still varies between runs of one seed.
// Failure: a fault step that fails is logged and the schedule goes on; RestoreAsync leaves the store and Bridge running.
using System.Globalization;
using Bridge.Tests.Support;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Search;
using MailKit.Security;

namespace Bridge.Soak;

internal sealed class Faults(SoakWorld world, Ledger ledger, int seed)
{
    private volatile bool _storeDown;

    public Task[] Start(CancellationToken stop) =>
    [
        Loop("store stop", 1, StoreOutageAsync, stop),
        Loop("bridge kill", 2, KillAsync, stop),
        Loop("reload", 3, ReloadAsync, stop),
        Loop("disk full", 4, DiskFullAsync, stop),
        Loop("login", 5, LoginAsync, stop),
        Loop("reader expunge", 6, ExpungeAsync, stop),
        Loop("rss", 7, SampleRssAsync, stop),
    ];

    private Task Loop(string kind, int salt, Func<Random, CancellationToken, Task> step, CancellationToken stop) => Task.Run(async () =>
    {
        var random = new Random(unchecked((seed * 7919) + salt));
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await step(random, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or System.Net.Sockets.SocketException or ImapProtocolException
                or ImapCommandException or MailKit.Security.AuthenticationException or ServiceNotConnectedException)
            {
                Console.WriteLine($"soak: {kind}: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            }
        }
    }, CancellationToken.None);

    private static Task Wait(Random random, double min, double max, CancellationToken stop) =>
        Task.Delay(TimeSpan.FromSeconds(min + (random.NextDouble() * (max - min))), stop);

    private async Task StoreOutageAsync(Random random, CancellationToken stop)
    {
        await Wait(random, 12, 30, stop);
        var start = DateTimeOffset.UtcNow;
        _storeDown = true;
        await world.Store.StopAsync();
        try
        {
            await Wait(random, 2, 9, stop);
        }
        finally
        {
            await world.Store.StartAgainAsync();
            _storeDown = false;
            ledger.Fault("store stop", start, DateTimeOffset.UtcNow);
        }
    }

    private async Task KillAsync(Random random, CancellationToken stop)
    {
        await Wait(random, 6, 18, stop);
        var start = DateTimeOffset.UtcNow;
        await world.KillBridgeAsync();
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(random.NextDouble() * 2), stop);
        }
        finally
        {
            await StartBridgeAsync();
            ledger.Fault("bridge kill", start, DateTimeOffset.UtcNow);
        }
    }

    private async Task StartBridgeAsync()
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await world.StartBridgeAsync();
                return;
            }
            catch (Exception e) when (attempt < 5 && e is Xunit.Sdk.XunitException or InvalidOperationException)
            {
                Console.WriteLine($"soak: Bridge did not start (attempt {attempt}): {e.Message.Split('\n')[0]}");
                await Task.Delay(1000);
            }
        }
    }

    private async Task ReloadAsync(Random random, CancellationToken stop)
    {
        await Wait(random, 5, 14, stop);
        await world.WriteSettingsAsync(!world.MovingUserInSpool);
        ledger.Fault(world.MovingUserInSpool ? "reload to Spool" : "reload to Legacy", DateTimeOffset.UtcNow);
    }

    private async Task DiskFullAsync(Random random, CancellationToken stop)
    {
        await Wait(random, 20, 45, stop);
        var start = DateTimeOffset.UtcNow;
        var filler = Path.Combine(world.Spool, ".soak-filler");
        try
        {
            var free = new DriveInfo(world.Spool).AvailableFreeSpace;
            var fill = await Proc.RunAsync("fallocate", ["-l", free.ToString(CultureInfo.InvariantCulture), filler]);
            if (fill.ExitCode != 0)
            {
                await Proc.RunAsync("dd", ["if=/dev/zero", $"of={filler}", "bs=1M"]); // until ENOSPC
            }
            await Wait(random, 2, 6, stop);
        }
        finally
        {
            File.Delete(filler);
            ledger.Fault("disk full", start, DateTimeOffset.UtcNow);
        }
    }

    /// <summary>An IMAP login to the store: the shipped post-login client asks Bridge to collect that user's spool.</summary>
    private async Task LoginAsync(Random random, CancellationToken stop)
    {
        await Wait(random, 1, 4, stop);
        if (_storeDown)
        {
            return;
        }
        var user = random.Next(2) == 0 || world.MovingUserInSpool ? SoakWorld.LegacyUser : SoakWorld.MovingUser;
        using var client = new ImapClient { Timeout = 30_000 };
        await client.ConnectAsync("127.0.0.1", world.Store.ImapPort, SecureSocketOptions.None, stop);
        await client.AuthenticateAsync(user, DovecotServer.Password, stop);
        await client.DisconnectAsync(true, stop);
        ledger.Fault("login", DateTimeOffset.UtcNow);
    }

    /// <summary>The Spool user reads the spool over IMAP (Dovecot, mbox) and expunges about a fifth of it.</summary>
    private async Task ExpungeAsync(Random random, CancellationToken stop)
    {
        await Wait(random, 3, 9, stop);
        var user = SoakWorld.SpoolUser;
        if (!File.Exists(world.MailboxOf(user)))
        {
            return;
        }
        using var client = new ImapClient { Timeout = 60_000 };
        await client.ConnectAsync("127.0.0.1", world.Reader.ImapPort, SecureSocketOptions.None, stop);
        await client.AuthenticateAsync(user, DovecotServer.Password, stop);
        var inbox = client.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadWrite, stop);
        var uids = await inbox.SearchAsync(SearchQuery.All, stop);
        var chosen = uids.Where(_ => random.Next(5) == 0).ToList();
        if (chosen.Count == 0)
        {
            await client.DisconnectAsync(true, stop);
            return;
        }
        var summaries = await inbox.FetchAsync(chosen, MessageSummaryItems.Envelope | MessageSummaryItems.UniqueId, stop);
        var ids = summaries.Select(s => s.Envelope?.MessageId?.Split('@')[0]).OfType<string>().ToList();
        var start = DateTimeOffset.UtcNow;
        try
        {
            await inbox.AddFlagsAsync(chosen, MessageFlags.Deleted, true, stop);
            await inbox.ExpungeAsync(stop);
        }
        catch
        {
            foreach (var id in ids)
            {
                ledger.PerhapsExpunged.Add((id, user)); // the answer was lost: it may or may not have happened
            }
            throw;
        }
        foreach (var id in ids)
        {
            ledger.Expunged.Add((id, user));
        }
        await client.DisconnectAsync(true, stop);
        ledger.Fault("reader expunge", start, DateTimeOffset.UtcNow);
    }

    private async Task SampleRssAsync(Random random, CancellationToken stop)
    {
        await Task.Delay(500, stop);
        if (world.Bridge is { } bridge)
        {
            try
            {
                var line = File.ReadLines($"/proc/{bridge.Pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
                if (line is not null)
                {
                    ledger.Rss(long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                // killed between the look and the read
            }
        }
    }

    /// <summary>After the faults: the store and Bridge running (each fault's finally already restarts what it stopped).</summary>
    public async Task RestoreAsync()
    {
        if (world.Bridge is null)
        {
            await StartBridgeAsync();
        }
    }
}
