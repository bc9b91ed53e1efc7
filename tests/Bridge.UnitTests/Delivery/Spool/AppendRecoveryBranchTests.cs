using System.Buffers;
using System.Text;
using Bridge.Delivery.Spool;
using Bridge.Native;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>The branches of AppendRecovery that AppendRecoveryTests leaves out, through its entry points (Settle,
/// SettleNowAsync, SettleAllAsync), on files in a temporary folder owned by whoever runs the tests (no root): an append
/// cut at a page boundary that falls in each part of the record (the From_ line, the headers, the body, just before
/// the final blank line, just after it), with and without another program's mail after it; entries that no longer
/// fit the file; a mailbox that cannot be read, truncated or cut now; and what happens at start for each journal
/// entry (an unsafe name, a mailbox gone, one that cannot be locked, a collection cursor left, a failure).</summary>
public sealed class AppendRecoveryBranchTests : IDisposable
{
    private static readonly byte[] Theirs = "From postfix@example.org  Tue Nov 24 10:01:00 2026\nSubject: theirs\n\ntheir body\n\n"u8.ToArray();

    private readonly string _dir = Directory.CreateTempSubdirectory("bridge-recovery-branches-").FullName;

    public AppendRecoveryBranchTests() => Directory.CreateDirectory(Path.Combine(_dir, "journal"));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Mailbox => Path.Combine(_dir, "alice");

    private AppendJournal Journal => new(Path.Combine(_dir, "journal"));

    private string EntryPath => Path.Combine(_dir, "journal", "alice.append");

    private SpoolSettings Settings => new(_dir, 0, TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5), null);

    private static MboxRecord Record(int bodyBytes) => new("crashed@example.org", "alice@example.org", "alice@example.org",
        new DateTime(2026, 11, 24, 10, 0, 0, DateTimeKind.Local), ReadOnlyMemory<byte>.Empty,
        new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("Subject: crashed\r\nX-Other: header\r\n\r\n" + new string('c', bodyBytes) + "\r\n")));

    private static byte[] BytesOf(MboxRecord record) => RecordBytes.Of(record);

    /// <summary>A mailbox of exactly <paramref name="length"/> bytes of earlier mail (one record, no "From " inside).</summary>
    private static byte[] Earlier(int length)
    {
        var head = "From old@example.org  Mon Nov 23 10:00:00 2026\nSubject: earlier\n\n";
        var fill = new StringBuilder();
        while (head.Length + fill.Length + 2 < length)
        {
            fill.Append(fill.Length % 72 == 71 ? '\n' : 'e');
        }
        var bytes = Encoding.ASCII.GetBytes(head + fill + "\n\n");
        Assert.Equal(length, bytes.Length);
        return bytes;
    }

    /// <summary>The journal entry of <paramref name="record"/> appended after <paramref name="earlier"/>, then the first
    /// <paramref name="written"/> bytes of it, then <paramref name="after"/> (another program's append).</summary>
    private void Crash(byte[] earlier, MboxRecord record, int written, byte[] after)
    {
        File.WriteAllBytes(Mailbox, earlier);
        Assert.Equal(0, Libc.Lstat(Mailbox, out var before));
        Assert.Equal(0, Journal.Record("alice", AppendDigest.EntryFor(before, before.Size, [record], out _)));
        using var stream = new FileStream(Mailbox, FileMode.Append);
        stream.Write(BytesOf(record).AsSpan(0, written));
        stream.Write(after);
    }

    private RecoveryResult Settle(int flags = Libc.O_WRONLY | Libc.O_APPEND)
    {
        var fd = Libc.Open(Mailbox, flags | Libc.O_CLOEXEC, 0);
        Assert.True(fd >= 0);
        try
        {
            return AppendRecovery.Settle(fd, Mailbox, "alice", Journal);
        }
        finally
        {
            Libc.Close(fd);
        }
    }

    /// <summary>Where, in the record's bytes, each part of it ends.</summary>
    private static int CutAt(byte[] record, string part)
    {
        var text = Encoding.ASCII.GetString(record);
        var fromLineEnd = text.IndexOf('\n', StringComparison.Ordinal);
        var headersEnd = text.IndexOf("\n\n", StringComparison.Ordinal) + 1;
        return part switch
        {
            "from-line" => fromLineEnd / 2,
            "headers" => fromLineEnd + 10,
            "body" => headersEnd + 100,
            "before-final-blank-line" => record.Length - 1,
            _ => throw new ArgumentOutOfRangeException(nameof(part)),
        };
    }

    public static TheoryData<string, string> Cuts()
    {
        var data = new TheoryData<string, string>();
        foreach (var part in new[] { "from-line", "headers", "body", "before-final-blank-line" })
        {
            foreach (var glue in new[] { "none", "", "\n", "\n\n" })
            {
                data.Add(part, glue);
            }
        }
        return data;
    }

    /// <summary>An append cut by a crash at the page boundary that falls in <paramref name="part"/> of the record: alone
    /// at the end, it is truncated away; followed by another program's mail (right after Bridge's cut-off line, or after
    /// the one or two newlines that writer added), it is cut out and every byte of theirs is kept.</summary>
    [Theory]
    [MemberData(nameof(Cuts))]
    public void An_append_cut_at_a_page_boundary_anywhere_in_the_record_is_removed_and_only_it(string part, string glue)
    {
        var record = Record(2000);
        var cut = CutAt(BytesOf(record), part);
        var earlier = Earlier(AppendDigest.PageBytes - cut); // the page boundary falls at the cut
        var after = glue == "none" ? [] : Encoding.ASCII.GetBytes(glue).Concat(Theirs).ToArray();
        Crash(earlier, record, cut, after);

        var result = Settle();

        Assert.False(result.Unsettled);
        Assert.False(File.Exists(EntryPath));
        if (part == "before-final-blank-line" && glue.StartsWith('\n'))
        {
            // The newline the other writer added is the one byte Bridge's record lacked: the record is complete and stays.
            Assert.Null(result.Note);
            Assert.Equal([.. earlier, .. BytesOf(record).AsSpan(0, cut), .. after], File.ReadAllBytes(Mailbox));
            return;
        }
        Assert.False(result.Note?.Critical);
        Assert.Contains($"removed an incomplete record of {cut} bytes", result.Note?.Message, StringComparison.Ordinal);
        Assert.Equal([.. earlier, .. after], File.ReadAllBytes(Mailbox));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    public void An_append_that_ended_exactly_after_its_final_blank_line_stays_even_at_a_page_boundary(int extra)
    {
        var record = Record(2000);
        var bytes = BytesOf(record);
        var earlier = Earlier(AppendDigest.PageBytes - bytes.Length + extra);
        Crash(earlier, record, bytes.Length, []);

        Assert.Null(Settle().Note);
        Assert.Equal([.. earlier, .. bytes], File.ReadAllBytes(Mailbox));
        Assert.False(File.Exists(EntryPath));
    }

    [Fact]
    public void A_complete_append_followed_by_another_programs_mail_stays_with_it()
    {
        var record = Record(10_000);
        var earlier = Earlier(300);
        Crash(earlier, record, BytesOf(record).Length, Theirs);

        Assert.Null(Settle().Note);
        Assert.Equal([.. earlier, .. BytesOf(record), .. Theirs], File.ReadAllBytes(Mailbox));
    }

    [Fact]
    public void An_append_of_which_nothing_reached_the_file_is_forgotten()
    {
        var earlier = Earlier(300);
        Crash(earlier, Record(2000), 0, []);

        Assert.Null(Settle().Note);
        Assert.Equal(earlier, File.ReadAllBytes(Mailbox));
        Assert.False(File.Exists(EntryPath));
    }

    [Fact]
    public void A_mailbox_that_became_shorter_than_where_the_append_began_is_left_alone()
    {
        var earlier = Earlier(300);
        Crash(earlier, Record(2000), 500, []);
        File.WriteAllBytes(Mailbox, earlier.AsSpan(0, 100).ToArray()); // same inode: another program truncated it

        Assert.Null(Settle().Note);
        Assert.Equal(100, new FileInfo(Mailbox).Length);
        Assert.False(File.Exists(EntryPath));
    }

    [Fact]
    public void Another_programs_mail_where_the_append_was_to_begin_is_forgotten_with_nothing_removed()
    {
        var earlier = Earlier(300);
        Crash(earlier, Record(2000), 0, Theirs); // Bridge was killed before its first write; Postfix appended

        Assert.Null(Settle().Note);
        Assert.Equal([.. earlier, .. Theirs], File.ReadAllBytes(Mailbox));
        Assert.False(File.Exists(EntryPath));
    }

    [Fact]
    public void Three_newlines_before_another_record_are_no_proof_and_everything_is_kept()
    {
        var record = Record(10_000);
        Crash(Earlier(AppendDigest.PageBytes - 1000), record, 1000, [.. "\n\n\n"u8, .. Theirs]);
        var size = new FileInfo(Mailbox).Length;

        var result = Settle();

        Assert.True(result.Note?.Critical);
        Assert.False(result.Unsettled);
        Assert.Contains("cannot prove it wrote (1000 bytes verified as its own)", result.Note?.Message, StringComparison.Ordinal);
        Assert.Equal(size, new FileInfo(Mailbox).Length);
        Assert.Single(Journal.KeptEntries(), k => k.Critical);
    }

    [Fact]
    public void A_page_of_the_append_that_no_longer_matches_stops_the_proof_there()
    {
        var record = Record(10_000);
        var bytes = BytesOf(record);
        var earlier = Earlier(300);
        Crash(earlier, record, bytes.Length, []);
        using (var stream = new FileStream(Mailbox, FileMode.Open, FileAccess.Write))
        {
            stream.Position = 6000; // in the second page: another program rewrote a byte of Bridge's record
            stream.WriteByte((byte)'Z');
        }
        var size = new FileInfo(Mailbox).Length;

        var result = Settle();

        Assert.True(result.Note?.Critical);
        Assert.Contains($"({AppendDigest.PageBytes - 300} bytes verified as its own)", result.Note?.Message, StringComparison.Ordinal);
        Assert.Equal(size, new FileInfo(Mailbox).Length);
    }

    /// <summary>Not a cut a crash of Bridge can leave (its writes end at page boundaries), pinned as it is: bytes of the
    /// first page that do not reach its end cannot be proven Bridge's, and when they start with "From " they are read
    /// as another program's record.</summary>
    [Fact]
    public void A_cut_inside_the_first_page_is_not_provably_bridges_and_stays()
    {
        var record = Record(10_000);
        var earlier = Earlier(300);
        Crash(earlier, record, 1000, []);

        Assert.Null(Settle().Note);
        Assert.Equal(300 + 1000, new FileInfo(Mailbox).Length);
        Assert.False(File.Exists(EntryPath));
    }

    [Fact]
    public void A_cut_inside_a_later_page_is_kept_and_set_aside_as_critical()
    {
        var record = Record(10_000);
        Crash(Earlier(300), record, 6000, []);

        var result = Settle();

        Assert.True(result.Note?.Critical);
        Assert.Contains($"({AppendDigest.PageBytes - 300} bytes verified as its own)", result.Note?.Message, StringComparison.Ordinal);
        Assert.Equal(300 + 6000, new FileInfo(Mailbox).Length);
    }

    // ---- what cannot be settled now ----

    [Fact]
    public void No_entry_is_nothing_to_do()
    {
        File.WriteAllBytes(Mailbox, Earlier(300));
        Assert.Equal(default, Settle());
    }

    [Fact]
    public void An_unreadable_entry_is_set_aside_and_the_mailbox_is_untouched()
    {
        var earlier = Earlier(300);
        File.WriteAllBytes(Mailbox, earlier);
        File.WriteAllText(EntryPath, "v2 this is not an entry\n");

        var result = Settle();

        Assert.False(result.Unsettled);
        Assert.False(result.Note?.Critical);
        Assert.Contains("unreadable append journal entry", result.Note?.Message, StringComparison.Ordinal);
        Assert.Single(Journal.KeptEntries(), k => !k.Critical);
        Assert.False(File.Exists(EntryPath));
        Assert.Equal(earlier, File.ReadAllBytes(Mailbox));
    }

    /// <summary>A batch of several records (the group commit) flushes each record's last bytes when the record ends, so
    /// a crash between two records leaves the file ending where a record ends, usually inside a page: the digest's
    /// pieces end there too, so those bytes are proven Bridge's. So does a write error's truncate back to the start of
    /// the failing record, cut short by a crash before the batch's entry was removed.</summary>
    [Theory]
    [InlineData(1, false)]
    [InlineData(1, true)]
    [InlineData(2, false)]
    [InlineData(2, true)]
    public void A_batch_cut_where_one_of_its_records_ends_is_removed_whole_and_only_it(int recordsWritten, bool theirsAfter)
    {
        var earlier = Earlier(300);
        File.WriteAllBytes(Mailbox, earlier);
        Assert.Equal(0, Libc.Lstat(Mailbox, out var before));
        MboxRecord[] batch = [Record(5000), Record(7000), Record(9000)];
        Assert.Equal(0, Journal.Record("alice", AppendDigest.EntryFor(before, before.Size, batch, out var lengths)));
        using (var stream = new FileStream(Mailbox, FileMode.Append))
        {
            foreach (var record in batch.Take(recordsWritten))
            {
                stream.Write(BytesOf(record));
            }
            if (theirsAfter)
            {
                stream.Write(Theirs);
            }
        }
        Assert.NotEqual(0, (earlier.Length + lengths.Take(recordsWritten).Sum()) % AppendDigest.PageBytes);

        var result = Settle();

        Assert.False(result.Unsettled);
        Assert.False(result.Note?.Critical, result.Note?.Message);
        Assert.Contains("removed an incomplete record", result.Note?.Message, StringComparison.Ordinal);
        Assert.Equal(theirsAfter ? [.. earlier, .. Theirs] : earlier, File.ReadAllBytes(Mailbox));
        Assert.False(File.Exists(EntryPath));
        Assert.Empty(Journal.KeptEntries());
    }

    [Theory]
    [InlineData("")]
    [InlineData("v2 2049 1234 0 9000 77 AAAA")]
    public void An_entry_torn_while_it_was_written_is_removed_and_nothing_set_aside(string text)
    {
        var earlier = Earlier(300);
        File.WriteAllBytes(Mailbox, earlier);
        File.WriteAllText(EntryPath, text);

        var result = Settle();

        Assert.False(result.Unsettled);
        Assert.False(result.Note?.Critical);
        Assert.Contains("torn while it was written", result.Note?.Message, StringComparison.Ordinal);
        Assert.Empty(Journal.KeptEntries());
        Assert.False(File.Exists(EntryPath));
        Assert.Equal(earlier, File.ReadAllBytes(Mailbox));
    }

    [Fact]
    public void A_descriptor_that_cannot_be_examined_leaves_the_entry_for_later()
    {
        Crash(Earlier(AppendDigest.PageBytes - 1000), Record(2000), 1000, []);

        var result = AppendRecovery.Settle(-1, Mailbox, "alice", Journal);

        Assert.True(result.Unsettled);
        Assert.True(result.Note?.Critical);
        Assert.Contains("cannot stat the mailbox", result.Note?.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(EntryPath));
    }

    [Theory]
    [InlineData(false)] // the path is gone
    [InlineData(true)] // the path names another file now
    public void A_mailbox_whose_path_no_longer_leads_to_it_is_not_touched_and_the_entry_stays(bool replaced)
    {
        var earlier = Earlier(AppendDigest.PageBytes - 1000);
        Crash(earlier, Record(2000), 1000, []);
        var fd = Libc.Open(Mailbox, Libc.O_WRONLY | Libc.O_APPEND | Libc.O_CLOEXEC, 0);
        try
        {
            File.Move(Mailbox, Mailbox + ".moved");
            if (replaced)
            {
                File.WriteAllBytes(Mailbox, earlier);
            }

            var result = AppendRecovery.Settle(fd, Mailbox, "alice", Journal);

            Assert.True(result.Unsettled);
            Assert.Contains("cannot read the mailbox to settle an interrupted append", result.Note?.Message, StringComparison.Ordinal);
            Assert.Contains(replaced ? "no longer names the locked mailbox" : "No such file", result.Note?.Message, StringComparison.OrdinalIgnoreCase);
            Assert.True(File.Exists(EntryPath));
            Assert.Equal(AppendDigest.PageBytes, new FileInfo(Mailbox + ".moved").Length);
        }
        finally
        {
            Libc.Close(fd);
        }
    }

    [Fact]
    public void A_truncate_that_fails_leaves_the_entry_for_later()
    {
        Crash(Earlier(AppendDigest.PageBytes - 1000), Record(2000), 1000, []);

        var result = Settle(Libc.O_RDONLY); // a descriptor that cannot truncate

        Assert.True(result.Unsettled);
        Assert.Contains("cannot truncate an incomplete record left by a crash", result.Note?.Message, StringComparison.Ordinal);
        Assert.Equal(AppendDigest.PageBytes, new FileInfo(Mailbox).Length);
        Assert.True(File.Exists(EntryPath));
    }

    [Fact]
    public void A_cut_whose_own_entry_cannot_be_written_leaves_everything_for_later()
    {
        Crash(Earlier(AppendDigest.PageBytes - 1000), Record(2000), 1000, Theirs);
        var bytes = File.ReadAllBytes(Mailbox);
        Directory.CreateDirectory(Path.Combine(_dir, "journal", "alice.cut.tmp"));

        var result = Settle();

        Assert.True(result.Unsettled);
        Assert.True(result.Note?.Critical);
        Assert.Contains("is followed by another program's mail, and could not be cut out yet", result.Note?.Message, StringComparison.Ordinal);
        Assert.Equal(bytes, File.ReadAllBytes(Mailbox));
        Assert.True(File.Exists(EntryPath));
    }

    // ---- at start: SettleAllAsync and SettleNowAsync ----

    private Task<IReadOnlyList<RecoveryNote>> SettleAll(SpoolSettings? settings = null) =>
        AppendRecovery.SettleAllAsync(settings ?? Settings, new InProcessMailboxLocks(), Journal, CancellationToken.None);

    [Fact]
    public async Task At_start_every_mailbox_with_an_entry_is_settled_under_its_locks()
    {
        var earlier = Earlier(AppendDigest.PageBytes - 1000);
        Crash(earlier, Record(2000), 1000, []);

        var note = Assert.Single(await SettleAll());

        Assert.Contains("alice: removed an incomplete record of 1000 bytes", note.Message, StringComparison.Ordinal);
        Assert.Equal(earlier, File.ReadAllBytes(Mailbox));
        Assert.Empty(Journal.Pending());
    }

    [Fact]
    public async Task At_start_an_entry_whose_name_no_mailbox_of_Bridge_has_is_set_aside()
    {
        File.WriteAllText(Path.Combine(_dir, "journal", "Bad Name.append"), "v2 0 0 0 0 0 \n");

        var note = Assert.Single(await SettleAll());

        Assert.False(note.Critical);
        Assert.StartsWith("Bad Name: not a mailbox name Bridge writes; moved to ", note.Message, StringComparison.Ordinal);
        Assert.Empty(Journal.Pending());
    }

    [Fact]
    public async Task At_start_the_entries_of_a_mailbox_that_is_gone_are_forgotten()
    {
        Crash(Earlier(300), Record(2000), 100, []);
        File.WriteAllText(Path.Combine(_dir, "journal", "alice.cut"), "garbage\n");
        File.Delete(Mailbox);

        Assert.Empty(await SettleAll());
        Assert.Empty(Journal.Pending());
        Assert.Empty(Journal.PendingOf(MailboxCut.Kind));
    }

    [Fact]
    public async Task At_start_a_mailbox_that_cannot_be_locked_is_a_critical_note_and_its_entry_stays()
    {
        Crash(Earlier(300), Record(2000), 100, []);
        File.Delete(Mailbox);
        Directory.CreateDirectory(Mailbox); // not a mailbox Bridge may open

        var note = Assert.Single(await SettleAll());

        Assert.True(note.Critical);
        Assert.Contains("alice: could not lock the mailbox to check an append interrupted by a crash", note.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(EntryPath));
    }

    [Fact]
    public async Task At_start_one_mailbox_that_fails_unexpectedly_does_not_stop_the_others()
    {
        Crash(Earlier(300), Record(2000), 100, []);

        var note = Assert.Single(await SettleAll(Settings with { Directory = null! })); // a stand-in for a bug

        Assert.True(note.Critical);
        Assert.Contains("alice: failed unexpectedly (ArgumentNullException", note.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(EntryPath));
    }

    [Fact]
    public async Task A_collection_cursor_left_behind_has_its_collected_prefix_cut_out()
    {
        var collected = Earlier(500);
        File.WriteAllBytes(Mailbox, [.. collected, .. Theirs]);
        var fd = Libc.Open(Mailbox, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        try
        {
            var cursor = CollectCursor.After(fd, 0, collected.Length);
            Assert.NotNull(cursor);
            Assert.Equal(0, cursor.Save(Journal, "alice", durable: true));
        }
        finally
        {
            Libc.Close(fd);
        }

        var note = Assert.Single(await AppendRecovery.SettleNowAsync("alice", Settings, new InProcessMailboxLocks(), Journal, CancellationToken.None));

        Assert.False(note.Critical);
        Assert.Equal("alice: removed the 500 bytes of mail a collection had moved to the store before it stopped", note.Message);
        Assert.Equal(Theirs, File.ReadAllBytes(Mailbox));
        Assert.Empty(Journal.PendingOf(CollectCursor.Kind));
    }

    [Fact]
    public async Task A_collection_cursor_that_no_longer_fits_the_mailbox_is_dropped_and_nothing_is_cut()
    {
        var collected = Earlier(500);
        File.WriteAllBytes(Mailbox, [.. collected, .. Theirs]);
        var fd = Libc.Open(Mailbox, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        try
        {
            Assert.Equal(0, CollectCursor.After(fd, 0, collected.Length)!.Save(Journal, "alice", durable: true));
        }
        finally
        {
            Libc.Close(fd);
        }
        var rewritten = Earlier(700);
        File.WriteAllBytes(Mailbox, [.. rewritten, .. Theirs]); // same inode, other bytes

        var note = Assert.Single(await AppendRecovery.SettleNowAsync("alice", Settings, new InProcessMailboxLocks(), Journal, CancellationToken.None));

        Assert.False(note.Critical);
        Assert.Contains("alice: the mailbox changed since the last collection stopped", note.Message, StringComparison.Ordinal);
        Assert.Equal([.. rewritten, .. Theirs], File.ReadAllBytes(Mailbox));
        Assert.Empty(Journal.PendingOf(CollectCursor.Kind));
    }

    [Fact]
    public async Task Settling_a_mailbox_with_nothing_to_settle_says_nothing()
    {
        var earlier = Earlier(300);
        File.WriteAllBytes(Mailbox, earlier);
        Assert.Empty(await AppendRecovery.SettleNowAsync("alice", Settings, new InProcessMailboxLocks(), Journal, CancellationToken.None));
        Assert.Equal(earlier, File.ReadAllBytes(Mailbox));
    }
}
