using System.Text;
using Bridge.Delivery.Spool;
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Spool;

/// <summary>What a crash mid-append leaves behind is cleaned up before anything else touches the mailbox.</summary>
public class CrashRecoveryTests
{
    private const string FirstLine = "From crashed@example.org  Tue Nov 24 10:00:00 2026";
    private static readonly byte[] Partial = Encoding.ASCII.GetBytes(FirstLine + "\nReturn-Path: <crashed@example.org>\nX-Original-To: ali");

    /// <summary>Leaves the mailbox and the journal as a Bridge killed in the middle of an append would.</summary>
    /// <param name="laterStarts">For a group commit: where its 2nd, 3rd, ... record start, relative to the old end.</param>
    private static void SimulateCrash(string mailbox, string journalDirectory, byte[] appended, long recordLength, params long[] laterStarts)
    {
        Directory.CreateDirectory(journalDirectory);
        Assert.Equal(0, Libc.Lstat(mailbox, out var before));
        Assert.Equal(0, new AppendJournal(journalDirectory).Record(TestAccounts.Alice,
            new AppendJournalEntry(before.Device, before.Inode, before.Size, before.Size + recordLength, FirstLine,
                [.. laterStarts.Select(s => before.Size + s)])));
        using var stream = new FileStream(mailbox, FileMode.Append);
        stream.Write(appended);
    }

    private static async Task<(TempDir Spool, TempDir Root, (uint Uid, uint Gid) Alice)> PrepareAsync()
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        await TestAccounts.EnsureAsync(TestAccounts.Bob);
        var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var root = new TempDir("bridge-root");
        SpoolScenario.CreateMailbox(spool[TestAccounts.Alice], SpoolScenario.SampleMbox, alice.Uid, alice.Gid);
        return (spool, root, alice);
    }

    private static Task<BridgeServer> StartAsync(TempDir spool, TempDir root) => BridgeServer.StartAsync(spool.Path, root.Path,
        $"Bridge:LocalDomains:0={SpoolScenario.Domain}", $"Bridge:Users:0:ShortNames:0={TestAccounts.Alice}");

    [Fact]
    public async Task A_half_written_record_is_truncated_at_start_before_mail_is_accepted()
    {
        var (spool, root, _) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        SimulateCrash(spool[TestAccounts.Alice], root["journal"], Partial, 5000);

        await using var bridge = await StartAsync(spool, root);

        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
        Assert.Contains(bridge.Logs.Lines, l => l.Contains($"removed an incomplete record of {Partial.Length} bytes", StringComparison.Ordinal));
        Assert.Empty(Directory.GetFiles(root["journal"]));
        Assert.StartsWith("250 ", (await Swaks.SendAsync(bridge.Port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}")).FinalReply, StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(spool[TestAccounts.Alice])).Count);
    }

    [Fact]
    public async Task A_half_written_record_found_while_running_is_truncated_before_the_next_delivery()
    {
        var (spool, root, _) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        await using var bridge = await StartAsync(spool, root);
        SimulateCrash(spool[TestAccounts.Alice], root["journal"], Partial, 5000); // e.g. a second instance that died

        var result = await Swaks.SendAsync(bridge.Port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <after@test>"]);

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        var messages = await MboxReaders.PythonMailboxAsync(spool[TestAccounts.Alice]);
        Assert.Equal(2, messages.Count);
        Assert.Equal("<after@test>", messages[1].MessageId);
        Assert.DoesNotContain("crashed@example.org", await File.ReadAllTextAsync(spool[TestAccounts.Alice]), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_complete_record_whose_journal_entry_survived_the_crash_is_kept()
    {
        var (spool, root, _) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        var complete = Encoding.ASCII.GetBytes(FirstLine + "\nSubject: made it\n\nbody\n\n");
        SimulateCrash(spool[TestAccounts.Alice], root["journal"], complete, complete.Length);

        await using var bridge = await StartAsync(spool, root);

        Assert.Equal((byte[])[.. SpoolScenario.SampleMbox, .. complete], await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
        Assert.Empty(Directory.GetFiles(root["journal"]));
    }

    [Fact]
    public async Task A_half_record_followed_by_another_writers_mail_is_left_in_place_and_reported()
    {
        var (spool, root, _) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        var foreign = Encoding.ASCII.GetBytes("\n\nFrom postfix@example.org  Tue Nov 24 10:01:00 2026\nSubject: theirs\n\ntheir body\n\n");
        SimulateCrash(spool[TestAccounts.Alice], root["journal"], [.. Partial, .. foreign], 5000);
        var before = await File.ReadAllBytesAsync(spool[TestAccounts.Alice]);

        await using var bridge = await StartAsync(spool, root);

        Assert.Equal(before, await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
        Assert.Contains(bridge.Logs.Lines, l => l.StartsWith("Critical", StringComparison.Ordinal) && l.Contains("followed by other mail", StringComparison.Ordinal));
    }
    [Fact]
    public async Task A_group_commit_cut_short_by_a_crash_is_truncated_whole_and_a_complete_one_is_kept_whole()
    {
        var (spool, root, _) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        var first = Encoding.ASCII.GetBytes(FirstLine + "\nSubject: one\n\nbody one\n\n");
        var second = Encoding.ASCII.GetBytes(FirstLine + "\nSubject: two\n\nbody two\n\n");
        // Two records journalled as one batch; the crash came after the first and part of the second.
        SimulateCrash(spool[TestAccounts.Alice], root["journal"], first.Concat(second.Take(30)).ToArray(), first.Length + second.Length, first.Length);

        await using (var bridge = await StartAsync(spool, root))
        {
            Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
            Assert.Contains(bridge.Logs.Lines, l => l.Contains($"removed an incomplete record of {first.Length + 30} bytes", StringComparison.Ordinal));
        }

        // A batch that was written completely: its own second "From " line is not mistaken for another writer's mail.
        SimulateCrash(spool[TestAccounts.Alice], root["journal"], first.Concat(second).ToArray(), first.Length + second.Length, first.Length);
        await using (var bridge = await StartAsync(spool, root))
        {
            Assert.Equal(SpoolScenario.SampleMbox.Concat(first).Concat(second).ToArray(), await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
            Assert.DoesNotContain(bridge.Logs.Lines, l => l.Contains("followed by other mail", StringComparison.Ordinal));
            Assert.Empty(Directory.GetFiles(root["journal"]));
        }
    }
}
