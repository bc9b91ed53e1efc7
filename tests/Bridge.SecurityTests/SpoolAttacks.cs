using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.SecurityTests;

/// <summary>The earlier reliability issue's attacks, now made by the intruder itself in a 1777 spool (any local user may
/// create names there): a mailbox name planted as a link to a root-only file, as the intruder's own file, as a hard
/// link; a dotlock planted as a FIFO or a link. Bridge writes nothing it should not, blocks on nothing, and the
/// victim's mail is either delivered to the victim or deferred, never handed to the intruder.</summary>
public class SpoolAttacks
{
    private const string Victim = TestAccounts.Alice;
    private static readonly string VictimAddress = $"{Victim}@{Daemon.Domain}";

    [Theory]
    [InlineData(RunAs.Root)]
    [InlineData(RunAs.Unit)]
    public async Task A_mailbox_name_planted_as_a_link_to_a_root_only_file_is_refused_and_the_file_untouched(RunAs runAs)
    {
        var intruder = await Intruder.EnsureAsync();
        using var secret = new TempDir("bridge-secret", TempDir.Mode("755"));
        await File.WriteAllTextAsync(secret["only-root"], "root's\n");
        File.SetUnixFileMode(secret["only-root"], TempDir.Mode("600"));
        await using var daemon = await Daemon.StartAsync(runAs);
        Assert.Equal(0, (await intruder.ShAsync($"ln -s {Proc.Quote(secret["only-root"])} {Proc.Quote(daemon.Spool[Victim])}")).ExitCode);

        var sent = await Swaks.SendAsync(daemon.Port, VictimAddress);

        Assert.StartsWith($"450 4.2.0 Mailbox {Victim} is unusable: it is a symbolic link", sent.FinalReply, StringComparison.Ordinal);
        Assert.Equal("root's\n", await File.ReadAllTextAsync(secret["only-root"]));
        Assert.Equal(0, Libc.Lstat(secret["only-root"], out var stat));
        Assert.Equal((0x180u, 0u), (stat.Permissions, stat.Uid));
    }

    [Fact]
    public async Task A_mailbox_name_planted_as_the_intruders_own_file_gets_none_of_the_victims_mail()
    {
        var intruder = await Intruder.EnsureAsync();
        await using var daemon = await Daemon.StartAsync(RunAs.Root);
        Assert.Equal(0, (await intruder.ShAsync($"touch {Proc.Quote(daemon.Spool[Victim])} && chmod 666 {Proc.Quote(daemon.Spool[Victim])}")).ExitCode);

        var sent = await Swaks.SendAsync(daemon.Port, VictimAddress);

        Assert.StartsWith($"450 4.2.0 Mailbox {Victim} is unusable: it is owned by uid {intruder.Uid}", sent.FinalReply, StringComparison.Ordinal);
        Assert.Equal(0, new FileInfo(daemon.Spool[Victim]).Length);
    }

    [Fact]
    public async Task A_hard_link_to_the_victims_mailbox_stops_delivery_into_it_so_no_new_mail_appears_under_the_intruders_name()
    {
        var intruder = await Intruder.EnsureAsync();
        await using var daemon = await Daemon.StartAsync(RunAs.Root);
        Assert.StartsWith("250 ", (await Swaks.SendAsync(daemon.Port, VictimAddress)).FinalReply, StringComparison.Ordinal);
        var size = new FileInfo(daemon.Spool[Victim]).Length;

        var link = await intruder.ShAsync($"ln {Proc.Quote(daemon.Spool[Victim])} {Proc.Quote(daemon.Spool["intruders-copy"])}");
        if (link.ExitCode != 0)
        {
            // fs.protected_hardlinks (Debian's default) already forbids linking a file one does not own; where it is off
            // (other systems, containers) the intruder can: made here as root, Bridge's own refusal is what is tested.
            Assert.Contains("Operation not permitted", link.Output, StringComparison.Ordinal);
            Assert.Equal(0, (await Proc.RunAsync("ln", [daemon.Spool[Victim], daemon.Spool["intruders-copy"]])).ExitCode);
        }
        var sent = await Swaks.SendAsync(daemon.Port, VictimAddress);
        Assert.StartsWith($"450 4.2.0 Mailbox {Victim} is unusable: it has 2 hard links", sent.FinalReply, StringComparison.Ordinal);
        Assert.Equal(size, new FileInfo(daemon.Spool[Victim]).Length);
    }

    [Theory]
    [InlineData("fifo")]
    [InlineData("symlink")]
    public async Task A_dotlock_planted_as_a_fifo_or_a_link_is_removed_without_being_opened_and_the_mail_delivered(string kind)
    {
        var intruder = await Intruder.EnsureAsync();
        using var secret = new TempDir("bridge-secret", TempDir.Mode("755"));
        await File.WriteAllTextAsync(secret["only-root"], "root's\n");
        File.SetUnixFileMode(secret["only-root"], TempDir.Mode("600"));
        await using var daemon = await Daemon.StartAsync(RunAs.Root, "Bridge:Spool:LockTimeout=00:00:05");
        var dotlock = Proc.Quote(daemon.Spool[Victim + ".lock"]);
        Assert.Equal(0, (await intruder.ShAsync(kind == "fifo" ? $"mkfifo {dotlock}" : $"ln -s {Proc.Quote(secret["only-root"])} {dotlock}")).ExitCode);

        var sent = await Swaks.SendAsync(daemon.Port, VictimAddress);

        Assert.True(sent.FinalReply.StartsWith("250 ", StringComparison.Ordinal), sent.Transcript + daemon.Log);
        Assert.Contains($"it was not a dotlock but {(kind == "fifo" ? "a FIFO" : "a symbolic link")}", daemon.Log, StringComparison.Ordinal);
        Assert.Equal("root's\n", await File.ReadAllTextAsync(secret["only-root"]));
        Assert.Single(await MboxReaders.PythonMailboxAsync(daemon.Spool[Victim]));
    }

    [Fact]
    public async Task A_dotlock_another_user_made_for_the_victims_mailbox_holds_nothing_back()
    {
        var intruder = await Intruder.EnsureAsync();
        await using var daemon = await Daemon.StartAsync(RunAs.Root, "Bridge:Spool:LockTimeout=00:00:05");
        // "1:host": pid 1 is always alive, so only the owner rule tells this lock from a mail program's.
        Assert.Equal(0, (await intruder.ShAsync($"printf '1:{Environment.MachineName}' > {Proc.Quote(daemon.Spool[Victim + ".lock"])}")).ExitCode);

        var sent = await Swaks.SendAsync(daemon.Port, VictimAddress);

        Assert.True(sent.FinalReply.StartsWith("250 ", StringComparison.Ordinal), sent.Transcript + daemon.Log);
        Assert.Contains($"a dotlock of uid {intruder.Uid}, who neither owns the mailbox", daemon.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Holding_ones_own_mailbox_locked_while_sending_to_oneself_and_another_does_not_lock_the_other_out()
    {
        // Bridge locks a message's mailboxes in name order. Waiting for the intruder's (which he keeps dotlocked, as any
        // user may lock his own mailbox) while holding the victim's, whose name sorts first, would keep the victim's
        // mailbox locked for LockTimeout per message, for Bridge and the victim's mail programs: with a few messages at
        // a time, for ever. Only the first lock of a round may be waited for.
        var intruder = await Intruder.EnsureAsync();
        const string victim = "bridgeavictim"; // sorts before bridgeintruder
        var victimIds = await TestAccounts.EnsureAsync(victim);
        await using var daemon = await Daemon.StartAsync(RunAs.Root, "Bridge:Spool:LockTimeout=00:00:08");
        var victimAddress = $"{victim}@{Daemon.Domain}";
        var intruderAddress = $"{Intruder.Login}@{Daemon.Domain}";
        Assert.StartsWith("250 ", (await Swaks.SendAsync(daemon.Port, intruderAddress)).FinalReply, StringComparison.Ordinal);
        var lockPath = Proc.Quote(daemon.Spool[Intruder.Login + ".lock"]);
        var locked = await intruder.ShAsync($"sleep 90 >/dev/null 2>&1 & echo \"$!:$(hostname)\" > {lockPath}");
        Assert.True(locked.ExitCode == 0, locked.Output);
        // The victim's own mail program, as the victim: dotlock then fcntl, as procmail and mutt lock, giving up after 2 s.
        const string reader = """
            import fcntl, os, sys, time
            path = sys.argv[1]
            deadline = time.time() + 2
            while True:
                try:
                    os.close(os.open(path + '.lock', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)); break
                except FileExistsError:
                    if time.time() > deadline: sys.exit('dotlock busy')
                    time.sleep(0.02)
            try:
                with open(path, 'r+b') as f:
                    while True:
                        try:
                            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB); break
                        except OSError:
                            if time.time() > deadline: sys.exit('fcntl busy')
                            time.sleep(0.02)
            finally:
                os.unlink(path + '.lock')
            """;
        Assert.StartsWith("250 ", (await Swaks.SendAsync(daemon.Port, victimAddress, extra: ["--header", "Message-Id: <victim-first@test>"])).FinalReply,
            StringComparison.Ordinal);
        using var stop = new CancellationTokenSource();
        var replies = new System.Collections.Concurrent.ConcurrentBag<string>();
        try
        {
            var attacks = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    replies.Add((await Swaks.SendAsync(daemon.Port, $"{victimAddress},{intruderAddress}")).FinalReply);
                }
            })).ToList();
            await Task.Delay(1000);

            for (var i = 0; i < 4; i++)
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var sent = await Swaks.SendAsync(daemon.Port, victimAddress, extra: ["--header", $"Message-Id: <victim-{i}@test>"]);
                Assert.StartsWith("250 ", sent.FinalReply, StringComparison.Ordinal);
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(4), $"the victim's mail took {clock.Elapsed} while the intruder's messages waited");
                var locking = await Proc.RunAsync("setpriv", [$"--reuid={victimIds.Uid}", $"--regid={victimIds.Gid}", "--clear-groups",
                    Peers.Require("python3", "python3"), "-c", reader, daemon.Spool[victim]]);
                Assert.True(locking.ExitCode == 0, $"the victim's mail program could not lock the mailbox within 2 s: {locking.Output}");
            }
            await Task.Delay(8000); // at least one attacking message has met the intruder's lock and gone back
            Assert.Contains(replies, r => r.StartsWith("451 4.2.0", StringComparison.Ordinal));
            stop.Cancel();
            await Task.WhenAll(attacks);
        }
        finally
        {
            await stop.CancelAsync();
            await Proc.RunAsync("pkill", ["-u", Intruder.Login, "sleep"]);
        }
        Assert.Equal(5, (await MboxReaders.PythonMailboxAsync(daemon.Spool[victim])).Count); // none of the attack's copies
    }
}
