using System.Diagnostics;
using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Spool;

/// <summary>Bridge against real lockers: python fcntl.lockf (Postfix/Dovecot/mutt style) and procmail's lockfile.</summary>
public class LockInteropTests
{
    private const string To = "alice@" + SpoolScenario.Domain;

    private static async Task<SpoolScenario> StartWithMailboxAsync(params string[] settings)
    {
        var s = await SpoolScenario.StartAsync(settings);
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);
        return s;
    }

    [Fact]
    public async Task Delivery_waits_for_an_fcntl_lock_and_succeeds_when_it_is_released()
    {
        await using var s = await StartWithMailboxAsync();
        using var holder = await LockHolder.FcntlAsync(s.AliceMailbox, 3);
        var clock = Stopwatch.StartNew();

        var result = await Swaks.SendAsync(s.Port, To);

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(2), $"delivered after {clock.Elapsed} while the lock was held for 3 s");
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).Count);
    }

    [Fact]
    public async Task An_fcntl_lock_held_past_the_limit_gives_451_4_2_0_and_leaves_the_mailbox_alone()
    {
        await using var s = await StartWithMailboxAsync("Bridge:Spool:LockTimeout=00:00:02");
        using var holder = await LockHolder.FcntlAsync(s.AliceMailbox, 60);

        var result = await Swaks.SendAsync(s.Port, To);

        Assert.StartsWith("451 4.2.0 Mailbox bridgetest1 is locked", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.AliceMailbox));
        Assert.False(File.Exists(s.AliceMailbox + ".lock"), "Bridge left its dotlock behind");
    }

    [Fact]
    public async Task A_procmail_dotlock_held_past_the_limit_gives_451_and_is_not_removed()
    {
        await using var s = await StartWithMailboxAsync("Bridge:Spool:LockTimeout=00:00:02");
        await LockHolder.TakeDotlockAsync(s.AliceMailbox);

        var refused = await Swaks.SendAsync(s.Port, To);

        Assert.StartsWith("451 4.2.0 ", refused.FinalReply, StringComparison.Ordinal);
        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.AliceMailbox));
        Assert.True(File.Exists(s.AliceMailbox + ".lock"), "someone else's dotlock was removed");

        File.Delete(s.AliceMailbox + ".lock");
        var accepted = await Swaks.SendAsync(s.Port, To);
        Assert.StartsWith("250 ", accepted.FinalReply, StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).Count);
    }

    [Fact]
    public async Task Delivery_waits_for_a_dotlock_and_succeeds_when_it_is_removed()
    {
        await using var s = await StartWithMailboxAsync();
        await LockHolder.TakeDotlockAsync(s.AliceMailbox);
        var clock = Stopwatch.StartNew();

        var sending = Swaks.SendAsync(s.Port, To);
        await Task.Delay(2000);
        Assert.False(sending.IsCompleted, "delivery did not wait for the dotlock");
        File.Delete(s.AliceMailbox + ".lock");
        var result = await sending;

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(1.5));
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).Count);
    }

    [Fact]
    public async Task A_dotlock_left_by_a_dead_process_is_broken()
    {
        await using var s = await StartWithMailboxAsync("Bridge:Spool:LockTimeout=00:00:05");
        using var dead = Process.Start("true")!;
        await dead.WaitForExitAsync();
        await File.WriteAllTextAsync(s.AliceMailbox + ".lock", $"{dead.Id}:{Environment.MachineName}");

        var result = await Swaks.SendAsync(s.Port, To);

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        Assert.False(File.Exists(s.AliceMailbox + ".lock"));
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).Count);
    }

    [Fact]
    public async Task A_dotlock_older_than_the_stale_limit_is_broken()
    {
        await using var s = await StartWithMailboxAsync("Bridge:Spool:DotlockStaleAfter=00:00:02", "Bridge:Spool:LockTimeout=00:00:10");
        await LockHolder.TakeDotlockAsync(s.AliceMailbox); // procmail writes no pid: only its age can make it stale
        await Task.Delay(3000);

        var result = await Swaks.SendAsync(s.Port, To);

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).Count);
    }

    [Fact]
    public async Task Twenty_concurrent_sessions_to_one_mailbox_deliver_every_message_once()
    {
        await using var s = await SpoolScenario.StartAsync();
        const int sessions = 20;
        var results = await Task.WhenAll(Enumerable.Range(0, sessions).Select(i =>
            Swaks.SendAsync(s.Port, To, extra: ["--header", $"Message-Id: <concurrent-{i}@test>", "--body", $"message {i}\nFrom line {i}"])));

        Assert.All(results, r => Assert.StartsWith("250 2.0.0 ", r.FinalReply, StringComparison.Ordinal));
        var messages = await MboxReaders.PythonMailboxAsync(s.AliceMailbox);
        var expected = Enumerable.Range(0, sessions).Select(i => $"<concurrent-{i}@test>").Order().ToList();
        Assert.Equal(expected, messages.Select(m => m.MessageId ?? "").Order().ToList());
        Assert.All(messages, m => Assert.Matches(@"^message \d+\n>From line \d+\n$", m.BodyText.Replace("\n\n", "\n", StringComparison.Ordinal)));
        Assert.Equal(expected, (await MboxReaders.FormailMessageIdsAsync(s.AliceMailbox)).Order().ToList());
    }
}
