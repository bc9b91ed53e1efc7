using Bridge.Delivery.Spool;
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Spool;

/// <summary>Mailboxes Bridge must refuse to write, and all-or-nothing delivery to several mailboxes.</summary>
public class MailboxSafetyTests
{
    private const string Alice = "alice@" + SpoolScenario.Domain;
    private const string Bob = "bob@" + SpoolScenario.Domain;

    [Fact]
    public async Task A_symlinked_mailbox_is_refused_and_its_target_untouched()
    {
        await using var s = await SpoolScenario.StartAsync();
        using var elsewhere = new TempDir();
        var target = elsewhere["target"];
        SpoolScenario.CreateMailbox(target, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);
        File.CreateSymbolicLink(s.AliceMailbox, target);

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("450 4.2.0 Mailbox bridgetest1 is unusable: it is a symbolic link", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(target));
    }

    [Fact]
    public async Task A_hard_linked_mailbox_is_refused_and_untouched()
    {
        await using var s = await SpoolScenario.StartAsync();
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);
        var link = await Proc.RunAsync("ln", [s.AliceMailbox, s.Spool["second-name"]]);
        Assert.Equal(0, link.ExitCode);

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("450 4.2.0 Mailbox bridgetest1 is unusable: it has 2 hard links", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.AliceMailbox));
    }

    [Fact]
    public async Task A_mailbox_owned_by_someone_else_is_deferred_and_untouched()
    {
        await using var s = await SpoolScenario.StartAsync();
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.BobIds.Uid, s.BobIds.Gid);

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith($"450 4.2.0 Mailbox bridgetest1 is unusable: it is owned by uid {s.BobIds.Uid}", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.AliceMailbox));
    }

    [Fact]
    public async Task A_fifo_or_directory_in_place_of_a_mailbox_is_refused()
    {
        await using var s = await SpoolScenario.StartAsync();
        Assert.Equal(0, (await Proc.RunAsync("mkfifo", [s.AliceMailbox])).ExitCode);
        Directory.CreateDirectory(s.BobMailbox);

        var fifo = await Swaks.SendAsync(s.Port, Alice);
        var directory = await Swaks.SendAsync(s.Port, Bob);

        Assert.StartsWith("450 4.2.0 Mailbox bridgetest1 is unusable", fifo.FinalReply, StringComparison.Ordinal);
        Assert.StartsWith("450 4.2.0 Mailbox bridgetest2 is unusable", directory.FinalReply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_mailbox_over_its_size_limit_gets_552_5_2_2_and_nothing_is_written()
    {
        await using var s = await SpoolScenario.StartAsync($"Bridge:Spool:MaxMailboxBytes={SpoolScenario.SampleMbox.Length + 100}");
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("552 5.2.2 Mailbox bridgetest1 is full", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.AliceMailbox));
    }

    [Fact]
    public async Task A_mailbox_over_its_limit_in_a_multi_recipient_message_gets_a_dsn_and_the_others_the_message()
    {
        var bouncePort = FreePort.Next();
        await using var s = await SpoolScenario.StartAsync("Bridge:Spool:MaxMailboxBytes=4000", $"Bridge:Bounces:Relay=127.0.0.1:{bouncePort}");
        await using var mta = await PostfixServer.StartAsync(s.Port, bouncePort); // the local MTA takes the bounce back to the sender
        // Under the limit at RCPT (so it is accepted there), over it with this message (refused after DATA).
        byte[] nearlyFull = [.. SpoolScenario.SampleMbox, .. Enumerable.Repeat((byte)'x', 3000), .. "\n\n"u8];
        SpoolScenario.CreateMailbox(s.AliceMailbox, nearlyFull, s.AliceIds.Uid, s.AliceIds.Gid);

        var result = await Swaks.SendAsync(s.Port, $"{Alice},{Bob}", from: $"{TestAccounts.Bob}@{SpoolScenario.Domain}",
            body: new string('b', 1000), extra: ["--header", "Message-Id: <full@test>"]);

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(nearlyFull, await File.ReadAllBytesAsync(s.AliceMailbox));
        await Eventually.WaitAsync(async () => (await MboxReaders.PythonMailboxAsync(s.BobMailbox)).Count == 2, 30, () => mta.Log);
        var bobs = await MboxReaders.PythonMailboxAsync(s.BobMailbox);
        Assert.Contains(bobs, m => m.MessageId == "<full@test>");
        var dsn = Assert.Single(bobs, m => m.MessageId != "<full@test>");
        Assert.Contains("Status: 5.2.2", dsn.BodyText, StringComparison.Ordinal);
        Assert.Contains($"Final-Recipient: rfc822; {Alice}", dsn.BodyText, StringComparison.Ordinal);
        Assert.StartsWith("MAILER-DAEMON", dsn.FromLine, StringComparison.Ordinal);
    }

    [Fact]
    public async Task When_one_mailbox_cannot_be_used_no_mailbox_gets_the_message()
    {
        await using var s = await SpoolScenario.StartAsync();
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);
        SpoolScenario.CreateMailbox(s.BobMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid); // wrong owner

        var result = await Swaks.SendAsync(s.Port, $"{Alice},{Bob}");

        Assert.StartsWith("450 4.2.0 Mailbox bridgetest2", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.AliceMailbox));
        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.BobMailbox));
    }

    [Fact]
    public async Task A_message_for_two_mailboxes_is_delivered_while_single_deliveries_keep_one_of_them_busy()
    {
        // The locks of a message for several mailboxes are taken in rounds that never wait while holding one; a
        // mailbox that was busy is waited for first in the next round, in its turn, so a steady stream of single
        // deliveries to Bob cannot make a message for Alice and Bob miss Bob's lock until LockTimeout.
        await using var s = await SpoolScenario.StartAsync("Bridge:Spool:LockTimeout=00:00:10");
        using var stop = new CancellationTokenSource();
        var flood = Enumerable.Range(0, 6).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await Swaks.SendAsync(s.Port, Bob);
            }
        })).ToList();
        try
        {
            await Task.Delay(500);
            for (var i = 0; i < 5; i++)
            {
                var both = await Swaks.SendAsync(s.Port, $"{Alice},{Bob}", extra: ["--header", $"Message-Id: <both-{i}@test>"]);
                Assert.StartsWith("250 ", both.FinalReply, StringComparison.Ordinal);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(flood);
        }
        Assert.Equal(5, (await MboxReaders.FormailMessageIdsAsync(s.AliceMailbox)).Count(id => id.StartsWith("<both-", StringComparison.Ordinal)));
        Assert.Equal(5, (await MboxReaders.FormailMessageIdsAsync(s.BobMailbox)).Count(id => id.StartsWith("<both-", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_full_disk_during_the_second_copy_truncates_the_first_and_answers_452_4_3_1()
    {
        Peers.RequireRoot();
        await using var s = await SpoolScenario.StartAsync();
        var spool = s.Spool.Path;
        var mount = await Proc.RunAsync("mount", ["-t", "tmpfs", "-o", "size=512k,mode=1777", "tmpfs", spool]);
        Assert.True(mount.ExitCode == 0, $"mount tmpfs failed: {mount.Output}");
        try
        {
            SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);
            SpoolScenario.CreateMailbox(s.BobMailbox, SpoolScenario.SampleMbox, s.BobIds.Uid, s.BobIds.Gid);
            // A ~40 KB copy grows a mailbox by about 10 pages. Leave room for both dotlocks, Alice's copy and
            // 4 pages more: Bob's copy starts, then fails with ENOSPC midway.
            var free = new DriveInfo(spool).AvailableFreeSpace;
            await File.WriteAllBytesAsync(Path.Combine(spool, "filler"), new byte[free - (16 * 4096)]);
            using var dir = new TempDir();
            var data = dir["message"];
            await File.WriteAllTextAsync(data, "Subject: big\n\n" + string.Concat(Enumerable.Repeat(new string('x', 99) + "\n", 400)) + "end");

            var result = await Swaks.SendAsync(s.Port, $"{Alice},{Bob}", dataFile: data);

            Assert.StartsWith("452 4.3.1 Insufficient system storage", result.FinalReply, StringComparison.Ordinal);
            Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.AliceMailbox));
            Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.BobMailbox));
            Assert.Empty(Directory.GetFiles(spool, "*.lock"));
        }
        finally
        {
            await Proc.RunAsync("umount", ["-l", spool]);
        }
    }

    [Fact]
    public async Task A_full_disk_when_the_dotlock_is_created_answers_452_4_3_1_not_a_permission_problem()
    {
        Peers.RequireRoot();
        await using var s = await SpoolScenario.StartAsync();
        var spool = s.Spool.Path;
        var mount = await Proc.RunAsync("mount", ["-t", "tmpfs", "-o", "size=1m,nr_inodes=16,mode=1777", "tmpfs", spool]);
        Assert.True(mount.ExitCode == 0, $"mount tmpfs failed: {mount.Output}");
        try
        {
            SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);
            for (var i = 0; ; i++) // use up the inodes: the mailbox exists, its dotlock cannot be created (ENOSPC)
            {
                try
                {
                    File.WriteAllBytes(Path.Combine(spool, $"filler{i}"), []);
                }
                catch (IOException)
                {
                    break;
                }
            }

            var result = await Swaks.SendAsync(s.Port, Alice);

            Assert.StartsWith("452 4.3.1 Insufficient system storage", result.FinalReply, StringComparison.Ordinal);
            Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.AliceMailbox));
            Assert.DoesNotContain(s.Bridge.Logs.Lines, l => l.Contains("permissions", StringComparison.Ordinal) || l.Contains("1777", StringComparison.Ordinal));
        }
        finally
        {
            await Proc.RunAsync("umount", ["-l", spool]);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task On_a_full_file_system_a_broken_stale_dotlock_is_replaced_by_an_empty_one_not_given_up(bool stale)
    {
        // A restarted Bridge breaks the stale lock of the Bridge that was killed mid-append, then takes its own to
        // settle the append (a truncate needs no space). If its lock could not hold the pid for want of a block and
        // were given up, the mailbox would be left unlocked with the append unsettled, for a reader to rewrite. With
        // no stale lock broken, a full disk fails the lock as before (the append would fail anyway: 452).
        Peers.RequireRoot();
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var mount = await Proc.RunAsync("mount", ["-t", "tmpfs", "-o", "size=64k,mode=1777", "tmpfs", spool.Path]);
        Assert.True(mount.ExitCode == 0, $"mount tmpfs failed: {mount.Output}");
        try
        {
            var mailbox = Path.Combine(spool.Path, "alice");
            await File.WriteAllBytesAsync(mailbox, SpoolScenario.SampleMbox);
            if (stale)
            {
                await File.WriteAllBytesAsync(mailbox + ".lock", []); // an empty lock (no block to free), stale by age below
            }
            await Proc.RunAsync("dd", ["if=/dev/zero", $"of={Path.Combine(spool.Path, "filler")}", "bs=4k"]); // until ENOSPC
            Assert.Equal(0, new DriveInfo(spool.Path).AvailableFreeSpace);
            await Task.Delay(1100); // the stale lock's age, in whole seconds of its ctime, is then over the limit below
            var dotlock = new Dotlock(mailbox);

            var result = dotlock.TryAcquire(TimeSpan.FromMilliseconds(1), out var errno);

            if (!stale)
            {
                Assert.Equal(DotlockResult.Failed, result);
                Assert.Equal(Libc.ENOSPC, errno);
                Assert.False(File.Exists(mailbox + ".lock"));
                return;
            }
            Assert.True(result == DotlockResult.Acquired, $"{result}: {Libc.Describe(errno)}");
            Assert.Equal(0, new FileInfo(mailbox + ".lock").Length);
            Assert.Equal(DotlockResult.Busy, new Dotlock(mailbox).TryAcquire(TimeSpan.FromMinutes(5), out _)); // it locks
            dotlock.Release();
            Assert.False(File.Exists(mailbox + ".lock"));
        }
        finally
        {
            await Proc.RunAsync("umount", ["-l", spool.Path]);
        }
    }

    [Fact]
    public async Task A_fifo_an_unprivileged_user_made_at_the_dotlock_path_cannot_hold_up_delivery()
    {
        await using var s = await SpoolScenario.StartAsync();
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);
        // Any local user may do this in a 1777 spool (the original note's own advice).
        var made = await Proc.RunAsync("setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "mkfifo", s.AliceMailbox + ".lock"]);
        Assert.True(made.ExitCode == 0, made.Output);
        made = await Proc.RunAsync("setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "mkfifo", s.BobMailbox]);
        Assert.True(made.ExitCode == 0, made.Output);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var alice = await Swaks.SendAsync(s.Port, Alice, timeout: TimeSpan.FromSeconds(60));
        var bob = await Swaks.SendAsync(s.Port, Bob, timeout: TimeSpan.FromSeconds(60));

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"the deliveries took {clock.Elapsed}");
        Assert.StartsWith("250 2.0.0 ", alice.FinalReply, StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).Count);
        Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains($"removed {s.AliceMailbox}.lock: it was not a dotlock but a FIFO", StringComparison.Ordinal));
        Assert.StartsWith("450 4.2.0 Mailbox bridgetest2 is unusable", bob.FinalReply, StringComparison.Ordinal); // a FIFO as the mailbox itself
    }

    [Fact]
    public async Task A_delivery_that_cannot_finish_is_answered_451_4_3_0_at_Bridge_DeliveryTimeout()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:DeliveryTimeout=00:00:02", "Bridge:Spool:LockTimeout=00:00:30");
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);
        using var holder = await LockHolder.FcntlAsync(s.AliceMailbox, 20);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("451 4.3.0 Delivery did not finish within Bridge:DeliveryTimeout (2 s)", result.FinalReply, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"answered after {clock.Elapsed}");
        holder.Dispose();
        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.AliceMailbox)); // nothing written after the answer
        Assert.StartsWith("250 ", (await Swaks.SendAsync(s.Port, Alice)).FinalReply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_root_owned_mailbox_of_a_real_account_is_deferred_and_untouched()
    {
        await using var s = await SpoolScenario.StartAsync();
        SpoolScenario.CreateMailbox(s.AliceMailbox, [], 0, 0);

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("450 4.2.0 Mailbox bridgetest1 is unusable: it is owned by uid 0", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(0, Libc.Lstat(s.AliceMailbox, out var stat));
        Assert.Equal(0, stat.Size);
    }
}

/// <summary>The file-size limit of the daemon's process (RLIMIT_FSIZE): EFBIG, not a crash by SIGXFSZ.</summary>
public class FileSizeLimitTests
{
    [Fact]
    public async Task A_mailbox_that_would_pass_the_process_file_size_limit_gets_552_5_2_2_and_stays_as_it_was()
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var port = FreePort.Next();
        await File.WriteAllTextAsync(dir["appsettings.json"], $$"""
            { "Bridge": { "Listen": { "Port": {{port}} }, "LocalDomains": [ "{{SpoolScenario.Domain}}" ],
              "Spool": { "Directory": "{{spool.Path}}", "JournalDirectory": "{{dir["journal"]}}" } } }
            """);
        var mailbox = spool[TestAccounts.Alice];
        var before = (byte[])[.. SpoolScenario.SampleMbox, .. Enumerable.Repeat((byte)'x', 100_000), .. "\n\n"u8];
        SpoolScenario.CreateMailbox(mailbox, before, alice.Uid, alice.Gid);
        // .NET's W^X double mapping cannot start under a file-size limit (it segfaults): switch it off.
        await using var bridge = await BridgeProcess.StartUnderAsync(["prlimit", "--fsize=120000"], dir,
            new Dictionary<string, string> { ["DOTNET_EnableWriteXorExecute"] = "0" });

        var result = await Swaks.SendAsync(port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}", body: new string('y', 50_000));

        Assert.StartsWith("552 5.2.2 Mailbox bridgetest1 is full", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllBytesAsync(mailbox));
        Assert.StartsWith("250 ", (await Swaks.SendAsync(port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}", body: "small")).FinalReply,
            StringComparison.Ordinal); // the daemon is alive
    }
}
