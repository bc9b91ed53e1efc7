using System.Buffers;
using System.Text;
using Bridge.Delivery.Spool;
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Spool;

/// <summary>What a crash mid-append leaves behind is settled before anything else touches the mailbox, removing only
/// bytes Bridge can prove it wrote: the journal entry carries the page hashes of the append, and the file is cut
/// where a killed Bridge leaves it (at a page boundary: Bridge writes up to 64 KiB boundaries, and Linux ends a write
/// cut short by SIGKILL at a page boundary; or where a record of a batch ends).</summary>
public class CrashRecoveryTests
{
    private static readonly byte[] Earlier = "From old@example.org  Mon Nov 23 10:00:00 2026\nSubject: earlier\nMessage-Id: <earlier@test>\n\nearlier body\n\n"u8.ToArray();
    private static readonly byte[] Theirs = "From postfix@example.org  Tue Nov 24 10:01:00 2026\nSubject: theirs\nMessage-Id: <theirs@test>\n\ntheir body\n\n"u8.ToArray();

    private sealed class Collect : IRecordSink
    {
        public MemoryStream Bytes { get; } = new();

        public int Write(ReadOnlySpan<byte> bytes)
        {
            Bytes.Write(bytes);
            return 0;
        }
    }

    /// <summary>A record as Bridge writes it, with a body of <paramref name="bodyBytes"/> bytes.</summary>
    private static MboxRecord Record(string id, int bodyBytes)
    {
        var body = string.Concat(Enumerable.Repeat(new string('c', 99) + "\r\n", (bodyBytes / 101) + 1));
        var message = Encoding.ASCII.GetBytes($"Subject: crashed {id}\r\nMessage-Id: <{id}@test>\r\n\r\n{body}end");
        return new MboxRecord("crashed@example.org", $"{TestAccounts.Alice}@{SpoolScenario.Domain}", $"{TestAccounts.Alice}@{SpoolScenario.Domain}",
            new DateTime(2026, 11, 24, 10, 0, 0, DateTimeKind.Local), ReadOnlyMemory<byte>.Empty, new ReadOnlySequence<byte>(message));
    }

    private static byte[] Render(params MboxRecord[] records)
    {
        var sink = new Collect();
        foreach (var record in records)
        {
            record.WriteTo(sink);
        }
        return sink.Bytes.ToArray();
    }

    /// <summary>Leaves mailbox, journal and dotlock as a Bridge killed in the middle of appending <paramref name="records"/>
    /// would: the journal entry, the first <paramref name="written"/> bytes, and a dotlock of a dead process.</summary>
    private static byte[] SimulateCrash(string mailbox, string journalDirectory, long written, params MboxRecord[] records)
    {
        Directory.CreateDirectory(journalDirectory);
        Assert.Equal(0, Libc.Lstat(mailbox, out var before));
        var entry = AppendDigest.EntryFor(before, before.Size, records, out _);
        Assert.Equal(0, new AppendJournal(journalDirectory).Record(TestAccounts.Alice, entry));
        var bytes = Render(records);
        using (var stream = new FileStream(mailbox, FileMode.Append))
        {
            stream.Write(bytes.AsSpan(0, (int)written));
        }
        File.WriteAllText(mailbox + ".lock", $"999999:{Environment.MachineName}"); // its owner is gone
        return bytes;
    }

    /// <summary>Bytes a crash at the <paramref name="n"/>th 64 KiB boundary after <paramref name="start"/> leaves.</summary>
    private static long CutAtBoundary(long start, int n) => ((start / 65536) + n) * 65536 - start;

    private static async Task<(TempDir Spool, TempDir Root)> PrepareAsync(byte[]? content = null)
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        await TestAccounts.EnsureAsync(TestAccounts.Bob);
        var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var root = new TempDir("bridge-root");
        SpoolScenario.CreateMailbox(spool[TestAccounts.Alice], content ?? Earlier, alice.Uid, alice.Gid);
        return (spool, root);
    }

    private static Task<BridgeServer> StartAsync(TempDir spool, TempDir root) => BridgeServer.StartAsync(spool.Path, root.Path,
        $"Bridge:LocalDomains:0={SpoolScenario.Domain}", $"Bridge:Users:0:ShortNames:0={TestAccounts.Alice}");

    /// <summary>`mailbridge check` on the spool and journal of the test, as an administrator runs it.</summary>
    private static Task<ProcResult> CheckAsync(TempDir spool, TempDir root) => BridgeProcess.RunToExitAsync(root, ["check",
        $"--Bridge:Spool:Directory={spool.Path}", $"--Bridge:Spool:JournalDirectory={root["journal"]}",
        $"--Bridge:Listen:Port={FreePort.Next()}", $"--Bridge:LocalDomains:0={SpoolScenario.Domain}"]);

    /// <summary>Another mail program appending under the fcntl lock only (Dovecot's mbox_write_locks = fcntl, mutt):
    /// "glued" appends right after the last byte; "ends-line" first ends an unterminated last line, as Dovecot does.</summary>
    private static async Task ForeignWriterAsync(string mailbox, string style)
    {
        const string script = """
            import fcntl, sys
            path, style, message = sys.argv[1], sys.argv[2], sys.argv[3].encode()
            with open(path, 'r+b') as f:
                fcntl.lockf(f, fcntl.LOCK_EX)
                f.seek(0, 2)
                if style == 'ends-line' and f.tell() > 0:
                    f.seek(-1, 2)
                    if f.read(1) != b'\n':
                        f.write(b'\n')
                f.write(message)
                f.flush()
            """;
        var result = await Proc.RunAsync(Peers.Require("python3", "python3"), ["-c", script, mailbox, style, Encoding.ASCII.GetString(Theirs)]);
        Assert.True(result.ExitCode == 0, result.Output);
    }

    [Fact]
    public async Task A_half_written_record_is_truncated_at_start_before_mail_is_accepted()
    {
        var (spool, root) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        var written = CutAtBoundary(Earlier.Length, 2);
        SimulateCrash(spool[TestAccounts.Alice], root["journal"], written, Record("big", 300_000));

        await using var bridge = await StartAsync(spool, root);

        Assert.Equal(Earlier, await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
        Assert.Contains(bridge.Logs.Lines, l => l.Contains($"removed an incomplete record of {written} bytes", StringComparison.Ordinal));
        Assert.Empty(Directory.GetFiles(root["journal"]));
        Assert.False(File.Exists(spool[TestAccounts.Alice] + ".lock"));
        Assert.StartsWith("250 ", (await Swaks.SendAsync(bridge.Port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}")).FinalReply, StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(spool[TestAccounts.Alice])).Count);
    }

    [Fact]
    public async Task A_half_written_record_found_while_running_is_truncated_before_the_next_delivery()
    {
        var (spool, root) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        await using var bridge = await StartAsync(spool, root);
        SimulateCrash(spool[TestAccounts.Alice], root["journal"], CutAtBoundary(Earlier.Length, 1), Record("big", 200_000)); // e.g. a second instance that died

        var result = await Swaks.SendAsync(bridge.Port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <after@test>"]);

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        var messages = await MboxReaders.PythonMailboxAsync(spool[TestAccounts.Alice]);
        Assert.Equal(["<earlier@test>", "<after@test>"], messages.Select(m => m.MessageId));
        Assert.DoesNotContain("crashed@example.org", await File.ReadAllTextAsync(spool[TestAccounts.Alice]), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_complete_record_whose_journal_entry_survived_the_crash_is_kept()
    {
        var (spool, root) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        var record = Record("complete", 5000);
        var bytes = Render(record);
        SimulateCrash(spool[TestAccounts.Alice], root["journal"], bytes.Length, record);

        await using var bridge = await StartAsync(spool, root);

        Assert.Equal((byte[])[.. Earlier, .. bytes], await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
        Assert.Empty(Directory.GetFiles(root["journal"]));
    }

    [Theory]
    [InlineData("glued")]     // the other writer's From_ line starts in the middle of Bridge's cut-off line
    [InlineData("ends-line")] // the other writer ends that line first (Dovecot)
    public async Task A_half_record_followed_by_a_fcntl_only_writers_mail_is_removed_and_the_other_mail_kept(string style)
    {
        var (spool, root) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        var mailbox = spool[TestAccounts.Alice];
        var written = CutAtBoundary(Earlier.Length, 2); // 128 KiB of a 2 MB append, ending mid-line
        SimulateCrash(mailbox, root["journal"], written, Record("big", 2_000_000));
        await ForeignWriterAsync(mailbox, style); // Bridge's fcntl lock died with it; its dotlock did not

        await using var bridge = await StartAsync(spool, root);

        byte[] expected = style == "glued" ? [.. Earlier, .. Theirs] : [.. Earlier, (byte)'\n', .. Theirs];
        Assert.Equal(expected, await File.ReadAllBytesAsync(mailbox));
        Assert.Equal(["<earlier@test>", "<theirs@test>"], (await MboxReaders.PythonMailboxAsync(mailbox)).Select(m => m.MessageId));
        Assert.Equal(["<earlier@test>", "<theirs@test>"], await MboxReaders.FormailMessageIdsAsync(mailbox));
        Assert.Contains(bridge.Logs.Lines, l => l.Contains($"removed an incomplete record of {written} bytes", StringComparison.Ordinal)
                                                && l.Contains($"the {Theirs.Length + (style == "glued" ? 0 : 1)} bytes another program appended after it were kept", StringComparison.Ordinal));
        Assert.Empty(Directory.GetFiles(root["journal"]));
        var alice = Libc.GetPasswdEntry(TestAccounts.Alice)!.Value;
        Assert.Equal(0, Libc.Lstat(mailbox, out var stat));
        Assert.Equal((alice.Uid, Convert.ToUInt32("600", 8)), (stat.Uid, stat.Permissions)); // the rewritten mailbox keeps owner and mode

        Assert.StartsWith("250 ", (await Swaks.SendAsync(bridge.Port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <next@test>"])).FinalReply,
            StringComparison.Ordinal);
        Assert.Equal(["<earlier@test>", "<theirs@test>", "<next@test>"], await MboxReaders.FormailMessageIdsAsync(mailbox));
    }

    [Fact]
    public async Task A_journal_entry_that_does_not_match_the_mailbox_removes_nothing()
    {
        // The entry claims an append from offset 0 reaching far past the end of the file: the bytes there are not the
        // ones it hashed, so not one byte is Bridge's to remove.
        var (spool, root) = await PrepareAsync([.. Earlier, .. Theirs]);
        using var _s = spool;
        using var _r = root;
        var mailbox = spool[TestAccounts.Alice];
        Directory.CreateDirectory(root["journal"]);
        Assert.Equal(0, Libc.Lstat(mailbox, out var stat));
        var entry = AppendDigest.EntryFor(stat, 0, [Record("elsewhere", 300_000)], out _);
        Assert.True(entry.After > stat.Size);
        Assert.Equal(0, new AppendJournal(root["journal"]).Record(TestAccounts.Alice, entry));

        await using var bridge = await StartAsync(spool, root);

        Assert.Equal((byte[])[.. Earlier, .. Theirs], await File.ReadAllBytesAsync(mailbox));
        Assert.Empty(Directory.GetFiles(root["journal"]));
    }

    [Fact]
    public async Task Bytes_after_a_verified_part_that_cannot_be_attributed_are_all_kept_logged_and_reported_by_check()
    {
        var (spool, root) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        var mailbox = spool[TestAccounts.Alice];
        var written = CutAtBoundary(Earlier.Length, 1) + 100; // not where a crash leaves a file: 100 bytes cannot be proven
        SimulateCrash(mailbox, root["journal"], written, Record("big", 300_000));
        var before = await File.ReadAllBytesAsync(mailbox);

        await using (var bridge = await StartAsync(spool, root))
        {
            Assert.Equal(before, await File.ReadAllBytesAsync(mailbox));
            Assert.Contains(bridge.Logs.Lines, l => l.StartsWith("Critical", StringComparison.Ordinal) && l.Contains("cannot prove it wrote", StringComparison.Ordinal));
        }
        var kept = Assert.Single(Directory.GetFiles(Path.Combine(root["journal"], "kept"), "*.append"));

        var check = await CheckAsync(spool, root);
        Assert.Equal(1, check.ExitCode);
        Assert.Contains($"FAIL mailbox {TestAccounts.Alice}: crash recovery kept everything in {mailbox}", check.Stdout, StringComparison.Ordinal);
        Assert.Contains($"then remove {kept}", check.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_group_commit_cut_short_by_a_crash_is_truncated_whole_and_a_complete_one_is_kept_whole()
    {
        var (spool, root) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        var first = Record("one", 70_000);
        var second = Record("two", 70_000);
        var firstLength = Render(first).Length;
        // Two records journalled as one batch; the crash came after the first and part of the second.
        var written = CutAtBoundary(Earlier.Length, 2);
        Assert.True(written > firstLength);
        SimulateCrash(spool[TestAccounts.Alice], root["journal"], written, first, second);

        await using (var bridge = await StartAsync(spool, root))
        {
            Assert.Equal(Earlier, await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
            Assert.Contains(bridge.Logs.Lines, l => l.Contains($"removed an incomplete record of {written} bytes", StringComparison.Ordinal));
        }

        // A batch that was written completely: its own second "From " line is not mistaken for another writer's mail.
        var both = SimulateCrash(spool[TestAccounts.Alice], root["journal"], Render(first, second).Length, first, second);
        await using (var bridge = await StartAsync(spool, root))
        {
            Assert.Equal(Earlier.Concat(both).ToArray(), await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
            Assert.DoesNotContain(bridge.Logs.Lines, l => l.Contains("removed", StringComparison.Ordinal));
            Assert.Empty(Directory.GetFiles(root["journal"]));
        }
    }

    [Fact]
    public async Task A_group_commit_cut_by_a_crash_where_one_of_its_records_ends_is_truncated_whole()
    {
        // Each record's last bytes are written when the record ends, usually inside a page: a crash before the next
        // record's first write leaves the file ending there. The journal's pieces end there too, so it is provable.
        var (spool, root) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        var first = Record("one", 70_000);
        var second = Record("two", 70_000);
        var written = Render(first).Length;
        Assert.NotEqual(0, (Earlier.Length + written) % AppendDigest.PageBytes);
        SimulateCrash(spool[TestAccounts.Alice], root["journal"], written, first, second);

        await using var bridge = await StartAsync(spool, root);

        Assert.Equal(Earlier, await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
        Assert.Contains(bridge.Logs.Lines, l => l.Contains($"removed an incomplete record of {written} bytes", StringComparison.Ordinal));
        Assert.DoesNotContain(bridge.Logs.Lines, l => l.StartsWith("Critical", StringComparison.Ordinal));
        Assert.Empty(Directory.GetFiles(root["journal"], "*", SearchOption.AllDirectories));
    }

    public static TheoryData<string, byte[]> TornEntries => new()
    {
        { "empty", [] },
        { "torn mid-write", "v2 2049 1234 0 9000 77 AAAA"u8.ToArray() },
    };

    [Theory]
    [MemberData(nameof(TornEntries))]
    public async Task A_journal_entry_torn_while_it_was_written_is_removed_and_the_mailbox_left_as_it_is(string name, byte[] entry)
    {
        // Record writes the entry's newline last and appends nothing before it returns: a torn entry is a crash before
        // its append began (or a Record that failed), so there is nothing to settle and nothing to set aside.
        var (spool, root) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        Directory.CreateDirectory(root["journal"]);
        await File.WriteAllBytesAsync(Path.Combine(root["journal"], $"{TestAccounts.Alice}.append"), entry);

        await using var bridge = await StartAsync(spool, root);

        Assert.Equal(Earlier, await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
        Assert.Contains(bridge.Logs.Lines, l => l.Contains("removed an append journal entry torn while it was written", StringComparison.Ordinal));
        Assert.Empty(Directory.GetFiles(root["journal"], "*", SearchOption.AllDirectories));
        Assert.StartsWith("250 ", (await Swaks.SendAsync(bridge.Port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}")).FinalReply, StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(spool[TestAccounts.Alice])).Count);
        var check = await CheckAsync(spool, root);
        Assert.DoesNotContain($"mailbox {TestAccounts.Alice}", check.Stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(root["journal"], "kept")), name);
    }

    [Fact]
    public async Task A_journal_too_full_for_an_entry_defers_the_delivery_and_leaves_no_entry_behind()
    {
        Peers.RequireRoot();
        var (spool, root) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        Directory.CreateDirectory(root["journal"]);
        var mount = await Proc.RunAsync("mount", ["-t", "tmpfs", "-o", "size=64k,mode=700", "tmpfs", root["journal"]]);
        Assert.True(mount.ExitCode == 0, $"mount tmpfs failed: {mount.Output}");
        try
        {
            var filler = Path.Combine(root["journal"], "filler");
            await Proc.RunAsync("dd", ["if=/dev/zero", $"of={filler}", "bs=4k"]); // until ENOSPC: names fit, bytes do not
            await using var bridge = await StartAsync(spool, root);

            var full = await Swaks.SendAsync(bridge.Port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}");

            Assert.StartsWith("452 4.3.1 ", full.FinalReply, StringComparison.Ordinal);
            Assert.Equal(Earlier, await File.ReadAllBytesAsync(spool[TestAccounts.Alice]));
            Assert.False(File.Exists(Path.Combine(root["journal"], $"{TestAccounts.Alice}.append"))); // not an empty entry

            File.Delete(filler);
            Assert.StartsWith("250 ", (await Swaks.SendAsync(bridge.Port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}")).FinalReply, StringComparison.Ordinal);
            Assert.False(Directory.Exists(Path.Combine(root["journal"], "kept")));
            Assert.DoesNotContain(bridge.Logs.Lines, l => l.Contains("journal entry", StringComparison.Ordinal));
        }
        finally
        {
            await Proc.RunAsync("umount", ["-l", root["journal"]]);
        }
    }

    public static TheoryData<string, byte[]> UnreadableEntries => new()
    {
        { "garbled base64", "v2 2049 1234 0 9000 77 !!!!not-base64!!!!\n"u8.ToArray() },
        { "binary garbage", [0xFF, 0x00, 0x13, 0x37, (byte)'\n'] },
        { "an older version's entry", "v1 2049 1234 0 9000 RnJvbSB4 \n"u8.ToArray() },
    };

    [Theory]
    [MemberData(nameof(UnreadableEntries))]
    public async Task An_unreadable_journal_entry_at_start_is_set_aside_and_the_mailbox_gets_mail(string name, byte[] entry)
    {
        var (spool, root) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        Directory.CreateDirectory(root["journal"]);
        await File.WriteAllBytesAsync(Path.Combine(root["journal"], $"{TestAccounts.Alice}.append"), entry);

        await using var bridge = await StartAsync(spool, root);

        Assert.StartsWith("250 ", (await Swaks.SendAsync(bridge.Port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}")).FinalReply, StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(spool[TestAccounts.Alice])).Count);
        Assert.Contains(bridge.Logs.Lines, l => l.Contains("unreadable append journal entry", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(root["journal"], $"{TestAccounts.Alice}.append")), name);
        Assert.Single(Directory.GetFiles(Path.Combine(root["journal"], "kept"), "*.append"));
        Assert.False(File.Exists(spool[TestAccounts.Alice] + ".lock"));

        var check = await CheckAsync(spool, root);
        Assert.Contains($"WARN mailbox {TestAccounts.Alice}: an append journal entry was set aside: unreadable append journal entry", check.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreadable_journal_entry_found_at_delivery_does_not_defer_the_mailbox()
    {
        var (spool, root) = await PrepareAsync();
        using var _s = spool;
        using var _r = root;
        await using var bridge = await StartAsync(spool, root);
        await File.WriteAllBytesAsync(Path.Combine(root["journal"], $"{TestAccounts.Alice}.append"), "v2 1 2 3 garbage\n"u8.ToArray());

        var result = await Swaks.SendAsync(bridge.Port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}");

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(spool[TestAccounts.Alice])).Count);
        Assert.Contains(bridge.Logs.Lines, l => l.StartsWith("Warning", StringComparison.Ordinal) && l.Contains("unreadable append journal entry", StringComparison.Ordinal));
    }
}
