using System.Buffers;
using System.Text;
using Bridge.Delivery.Spool;
using Bridge.Native;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>Every branch of AppendRecovery on files in a temporary folder (no root): what a crash mid-append leaves is
/// settled from the journal's page hashes, removing only bytes Bridge can prove it wrote, in place; and a mailbox whose
/// interrupted append cannot be settled now is not written (its journal entry must not be replaced by a new one).</summary>
public sealed class AppendRecoveryTests : IDisposable
{
    private static readonly byte[] Earlier = "From old@example.org  Mon Nov 23 10:00:00 2026\nSubject: earlier\n\nearlier body\n\n"u8.ToArray();
    private static readonly byte[] Theirs = "From postfix@example.org  Tue Nov 24 10:01:00 2026\nSubject: theirs\n\ntheir body\n\n"u8.ToArray();

    private readonly string _dir = Directory.CreateTempSubdirectory("bridge-recovery-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Mailbox => Path.Combine(_dir, "alice");

    private AppendJournal Journal => new(Path.Combine(_dir, "journal"));

    private static MboxRecord Record(int bodyBytes) => new("crashed@example.org", "alice@example.org", "alice@example.org",
        new DateTime(2026, 11, 24, 10, 0, 0, DateTimeKind.Local), ReadOnlyMemory<byte>.Empty,
        new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("Subject: crashed\r\n\r\n" + new string('c', bodyBytes) + "\r\n")));

    /// <summary>The mailbox and journal as a Bridge killed after writing <paramref name="written"/> bytes of its append leaves them;
    /// then <paramref name="after"/> appended by another program.</summary>
    private byte[] Crash(int bodyBytes, int written, byte[] after)
    {
        Directory.CreateDirectory(Path.Combine(_dir, "journal"));
        File.WriteAllBytes(Mailbox, Earlier);
        Assert.Equal(0, Libc.Lstat(Mailbox, out var before));
        var record = Record(bodyBytes);
        Assert.Equal(0, Journal.Record("alice", AppendDigest.EntryFor(before, before.Size, [record], out _)));
        var bytes = RecordBytes.Of(record);
        using (var stream = new FileStream(Mailbox, FileMode.Append))
        {
            stream.Write(bytes.AsSpan(0, Math.Min(written, bytes.Length)));
            stream.Write(after);
        }
        return bytes;
    }

    private RecoveryResult Settle()
    {
        var fd = Libc.Open(Mailbox, Libc.O_WRONLY | Libc.O_APPEND | Libc.O_CLOEXEC, 0);
        try
        {
            return AppendRecovery.Settle(fd, Mailbox, "alice", Journal);
        }
        finally
        {
            Libc.Close(fd);
        }
    }

    private bool EntryLeft => File.Exists(Path.Combine(_dir, "journal", "alice.append"));

    [Fact]
    public void A_complete_append_stays()
    {
        var record = Crash(10_000, int.MaxValue, []);
        var result = Settle();
        Assert.Null(result.Note);
        Assert.Equal([.. Earlier, .. record], File.ReadAllBytes(Mailbox));
        Assert.False(EntryLeft);
    }

    [Fact]
    public void A_partial_append_at_the_end_is_truncated()
    {
        Crash(10_000, 4096 - Earlier.Length, []); // cut at the first page boundary
        var result = Settle();
        Assert.Contains("removed an incomplete record", result.Note?.Message, StringComparison.Ordinal);
        Assert.Equal(Earlier, File.ReadAllBytes(Mailbox));
        Assert.False(EntryLeft);
    }

    [Theory]
    [InlineData("")] // another writer appended right after the cut-off line
    [InlineData("\n")] // one that ended that line first, as Dovecot does
    public void A_partial_append_followed_by_another_programs_mail_is_cut_out_in_place(string glue)
    {
        Crash(10_000, 4096 - Earlier.Length, [.. Encoding.ASCII.GetBytes(glue), .. Theirs]);
        Assert.Equal(0, Libc.Lstat(Mailbox, out var before));

        var result = Settle();

        Assert.False(result.Unsettled);
        Assert.Contains("another program appended after it were kept", result.Note?.Message, StringComparison.Ordinal);
        Assert.Equal([.. Earlier, .. Encoding.ASCII.GetBytes(glue), .. Theirs], File.ReadAllBytes(Mailbox));
        Assert.Equal(0, Libc.Lstat(Mailbox, out var after));
        Assert.True(after.SameFileAs(before), "cut out in place: the mailbox keeps its inode");
        Assert.False(EntryLeft);
    }

    [Fact]
    public void Bytes_that_cannot_be_attributed_are_all_kept_and_the_entry_set_aside_as_critical()
    {
        Crash(10_000, 4096 - Earlier.Length, "garbage that is no record\n"u8.ToArray());
        var size = new FileInfo(Mailbox).Length;
        var result = Settle();
        Assert.True(result.Note?.Critical);
        Assert.Equal(size, new FileInfo(Mailbox).Length);
        Assert.False(EntryLeft);
        Assert.Single(Journal.KeptEntries(), k => k.Critical);
    }

    [Fact]
    public void A_journal_entry_about_another_file_removes_nothing()
    {
        Crash(10_000, 4096 - Earlier.Length, []);
        var bytes = File.ReadAllBytes(Mailbox);
        File.WriteAllBytes(Mailbox + ".new", bytes);
        File.Move(Mailbox + ".new", Mailbox, overwrite: true); // a new inode (both existed at once) with the same bytes
        Assert.Null(Settle().Note);
        Assert.Equal(bytes, File.ReadAllBytes(Mailbox));
        Assert.False(EntryLeft);
    }

    [Fact]
    public async Task An_interrupted_append_that_cannot_be_settled_now_keeps_the_mailbox_from_being_written()
    {
        Crash(10_000, 4096 - Earlier.Length, Theirs);
        var size = new FileInfo(Mailbox).Length;
        Directory.CreateDirectory(Path.Combine(_dir, "journal", "alice.cut.tmp")); // the cut's journal entry cannot be written
        var settings = new SpoolSettings(_dir, 0, TimeSpan.FromSeconds(2), TimeSpan.FromMinutes(5), null);

        var opened = await LockedMailbox.OpenForDeliveryAsync("alice", Libc.Geteuid(), settings, new InProcessMailboxLocks(), Journal, CancellationToken.None);

        Assert.Null(opened.Mailbox);
        Assert.Equal(SpoolProblem.Retry, opened.Result.Problem);
        Assert.True(EntryLeft, "the interrupted append's entry is still there to be settled");
        Assert.Equal(size, new FileInfo(Mailbox).Length);

        Directory.Delete(Path.Combine(_dir, "journal", "alice.cut.tmp"));
        var again = await LockedMailbox.OpenForDeliveryAsync("alice", Libc.Geteuid(), settings, new InProcessMailboxLocks(), Journal, CancellationToken.None);
        using (again.Mailbox)
        {
            Assert.NotNull(again.Mailbox);
        }
        Assert.Equal([.. Earlier, .. Theirs], File.ReadAllBytes(Mailbox));
    }
}
