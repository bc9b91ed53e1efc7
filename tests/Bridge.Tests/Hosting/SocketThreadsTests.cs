using System.Diagnostics;
using Bridge.Tests.Support;

namespace Bridge.Tests.Hosting;

/// <summary>Bridge as its own process runs socket continuations on the socket event threads
/// (Hosting/SocketThreads.cs), so whatever waits (locks, disks, NSS) must wait elsewhere: a delivery stuck behind
/// another program's mailbox lock must not hold up the sessions of other mailboxes.</summary>
public class SocketThreadsTests
{
    [Fact]
    public async Task Deliveries_waiting_for_a_locked_mailbox_do_not_hold_up_other_sessions()
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        var bob = await TestAccounts.EnsureAsync(TestAccounts.Bob);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var port = FreePort.Next();
        await File.WriteAllTextAsync(dir["appsettings.json"], $$"""
            { "Bridge": { "Listen": { "Port": {{port}} }, "LocalDomains": [ "{{SpoolScenario.Domain}}" ],
                          "Spool": { "Directory": "{{spool.Path}}", "JournalDirectory": "{{dir["journal"]}}" } } }
            """);
        SpoolScenario.CreateMailbox(spool[TestAccounts.Alice], [], alice.Uid, alice.Gid);
        SpoolScenario.CreateMailbox(spool[TestAccounts.Bob], [], bob.Uid, bob.Gid);
        await using var bridge = await BridgeProcess.StartAsync(dir, null);
        var toAlice = $"{TestAccounts.Alice}@{SpoolScenario.Domain}";
        var toBob = $"{TestAccounts.Bob}@{SpoolScenario.Domain}";

        // Mail already flowing (accounts known, code warm), so sessions run on the socket threads from the start.
        Assert.StartsWith("250 2.0.0 ", (await Swaks.SendAsync(port, $"{toAlice},{toBob}", extra: ["--header", "Message-Id: <earlier@test>"])).FinalReply,
            StringComparison.Ordinal);

        using var holder = await LockHolder.FcntlAsync(spool[TestAccounts.Alice], 12);
        // First the all-or-none path (two mailboxes) waits for the lock itself, then a group commit queues behind it.
        var both = Swaks.SendAsync(port, $"{toAlice},{toBob}", extra: ["--header", "Message-Id: <waiting-2@test>"]);
        await Task.Delay(700);
        var one = Swaks.SendAsync(port, toAlice, extra: ["--header", "Message-Id: <waiting-1@test>"]);
        await Task.Delay(700);
        Task<SwaksResult>[] waiting = [both, one];

        var clock = Stopwatch.StartNew();
        var others = await Task.WhenAll(Enumerable.Range(0, 8)
            .Select(i => Swaks.SendAsync(port, toBob, extra: ["--header", $"Message-Id: <other-{i}@test>"])));
        var took = clock.Elapsed;
        Assert.All(others, r => Assert.StartsWith("250 2.0.0 ", r.FinalReply, StringComparison.Ordinal));
        Assert.All(waiting, w => Assert.False(w.IsCompleted, "a delivery to the locked mailbox finished while the lock was held"));
        Assert.True(took < TimeSpan.FromSeconds(8), $"8 deliveries to an unlocked mailbox took {took} while another was locked");

        holder.Dispose(); // the other program lets go: the waiting deliveries go through
        foreach (var result in await Task.WhenAll(waiting))
        {
            Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        }
        var aliceIds = (await MboxReaders.PythonMailboxAsync(spool[TestAccounts.Alice])).Select(m => m.MessageId).Order().ToList();
        Assert.Equal(["<earlier@test>", "<waiting-1@test>", "<waiting-2@test>"], aliceIds);
        var bobIds = (await MboxReaders.PythonMailboxAsync(spool[TestAccounts.Bob])).Select(m => m.MessageId).ToList();
        Assert.Equal(10, bobIds.Count);
        Assert.Contains("<waiting-2@test>", bobIds);
    }
}
