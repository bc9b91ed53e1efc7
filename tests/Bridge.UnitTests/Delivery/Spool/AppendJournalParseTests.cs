using System.Text;
using Bridge.Delivery.Spool;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>Pure logic: a journal entry is read back exactly, and anything torn or garbled is a reason, never an exception.</summary>
public class AppendJournalParseTests
{
    [Fact]
    public void An_entry_is_read_back_as_it_was_recorded()
    {
        var hashes = new byte[8 * AppendDigest.PageCount(100, 9000)];
        new Random(1).NextBytes(hashes);
        var text = $"v2 2049 1234 100 9000 -77 {Convert.ToBase64String(hashes)}\n";

        var entry = AppendJournal.Parse(Encoding.ASCII.GetBytes(text), out _);

        Assert.NotNull(entry);
        Assert.Equal((2049UL, 1234UL, 100L, 9000L, -77L), (entry.Device, entry.Inode, entry.Before, entry.After, entry.Seed));
        Assert.Equal(hashes, entry.PageHashes);
    }

    [Fact]
    public void A_batch_entry_with_record_ends_inside_pages_is_read_back_with_them()
    {
        long[] cuts = [5000, 9000];
        var hashes = new byte[8 * (AppendDigest.PageCount(100, 20000) + cuts.Length)];
        new Random(2).NextBytes(hashes);
        var text = $"v3 2049 1234 100 20000 -77 5000,9000 {Convert.ToBase64String(hashes)}\n";

        var entry = AppendJournal.Parse(Encoding.ASCII.GetBytes(text), out var problem);

        Assert.True(entry is not null, problem);
        Assert.Equal(cuts, entry.Cuts);
        Assert.Equal(hashes, entry.PageHashes);
        Assert.Equal(entry.Pages, entry.Pieces.Count());
    }

    [Theory]
    [InlineData("v3 2049 1234 100 20000 -77 9000,5000 {0}\n", "fields are malformed")]
    [InlineData("v3 2049 1234 100 20000 -77 5000,x {0}\n", "fields are malformed")]
    [InlineData("v3 2049 1234 100 20000 -77 {0}\n", "fields are malformed")]
    [InlineData("v3 2049 1234 100 20000 -77 100,9000 {0}\n", "outside its byte range")]
    [InlineData("v3 2049 1234 100 20000 -77 5000,20000 {0}\n", "outside its byte range")]
    [InlineData("v3 2049 1234 100 20000 -77 5000,8192 {0}\n", "on page boundaries")]
    public void A_batch_entry_whose_record_ends_do_not_fit_is_a_reason(string format, string reason)
    {
        var hashes = new byte[8 * (AppendDigest.PageCount(100, 20000) + 2)];
        var text = string.Format(System.Globalization.CultureInfo.InvariantCulture, format, Convert.ToBase64String(hashes));
        Assert.Null(AppendJournal.Parse(Encoding.ASCII.GetBytes(text), out var problem));
        Assert.Contains(reason, problem, StringComparison.Ordinal);
    }

    private static readonly int[] BodySizes = [5000, 7000, 3000];

    [Fact]
    public void A_batch_is_cut_where_each_of_its_records_ends_and_recorded_back_the_same()
    {
        var records = BodySizes.Select(n => new MboxRecord("a@example.org", "alice@example.org", "alice@example.org",
            new DateTime(2026, 11, 24, 10, 0, 0, DateTimeKind.Local), ReadOnlyMemory<byte>.Empty,
            new System.Buffers.ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("Subject: s\r\n\r\n" + new string('c', n) + "\r\n")))).ToArray();
        var stat = default(Bridge.Native.FileStat);
        var entry = AppendDigest.EntryFor(stat, 300, records, out var lengths);

        var ends = lengths.Select((_, i) => 300 + lengths.Take(i + 1).Sum()).ToArray();
        Assert.Equal(ends[..^1].Where(e => e % AppendDigest.PageBytes != 0), entry.Cuts);
        var pieces = entry.Pieces.ToList();
        Assert.Equal(entry.Pages, pieces.Count);
        Assert.All(ends, e => Assert.Contains(pieces, p => p.End == e));
        Assert.All(pieces, p => Assert.True(p.End % AppendDigest.PageBytes == 0 || ends.Contains(p.End)));
        var dir = Directory.CreateTempSubdirectory("bridge-journal-").FullName;
        try
        {
            var journal = new AppendJournal(dir);
            Assert.Equal(0, journal.Record("alice", entry));
            var read = journal.Find("alice").Entry;
            Assert.NotNull(read);
            Assert.Equal(entry.Cuts, read.Cuts);
            Assert.Equal(entry.PageHashes, read.PageHashes);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("v2 2049 1234 100 9000 77 AAAAAAAAAAA=", "no final newline")]
    [InlineData("v2 2049 1234 100 9000 77 ***\n", "malformed")]
    [InlineData("v2 2049 1234 100 9000 77 AAAAAAAAAAA=\n", "do not cover")]
    [InlineData("v2 2049 1234 9000 100 77 AAAAAAAAAAA=\n", "fields are malformed")]
    [InlineData("v2 x y z\n", "fields are malformed")]
    [InlineData("v1 2049 1234 0 9000 RnJvbSB4\n", "older Bridge")]
    [InlineData("\u00ff\u0000garbage\n", "not text")]
    public void A_torn_or_garbled_entry_is_a_reason_not_an_exception(string text, string reason)
    {
        var entry = AppendJournal.Parse(Encoding.Latin1.GetBytes(text), out var problem);
        Assert.Null(entry);
        Assert.Contains(reason, problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Bridge.Native.Libc.EMFILE, true)]
    [InlineData(Bridge.Native.Libc.ENFILE, true)]
    [InlineData(Bridge.Native.Libc.ENOMEM, true)]
    [InlineData(Bridge.Native.Libc.EIO, false)]
    [InlineData(Bridge.Native.Libc.EACCES, false)]
    public void An_entry_unreadable_for_want_of_descriptors_or_memory_is_read_again_later_not_set_aside(int errno, bool transient) =>
        Assert.Equal(transient, JournalLookup.Failed("cannot open x", errno).Transient);

    [Theory]
    [InlineData("", true)]
    [InlineData("v2 2049 1234 100 9000 77 AAAAAAAAAAA=", true)]
    [InlineData("v2 2049 1234 100 9000 77 ***\n", false)]
    [InlineData("\u00ff\u0000garbage\n", false)]
    public void Only_an_entry_short_of_its_final_newline_is_torn(string text, bool torn) =>
        Assert.Equal(torn, AppendJournal.IsTorn(Encoding.Latin1.GetBytes(text)));

    [Theory]
    [InlineData(0, 1, 1)]
    [InlineData(0, 4096, 1)]
    [InlineData(0, 4097, 2)]
    [InlineData(4000, 4200, 2)]
    [InlineData(4096, 12288, 2)]
    [InlineData(5, 5, 0)]
    public void Pieces_end_at_page_boundaries(long before, long after, int pieces)
    {
        Assert.Equal(pieces, AppendDigest.PageCount(before, after));
        Assert.Equal(pieces, AppendDigest.Pieces(before, after, []).Count());
        foreach (var (start, end) in AppendDigest.Pieces(before, after, []))
        {
            Assert.True(end == after || end % AppendDigest.PageBytes == 0);
            Assert.True(start == before || start % AppendDigest.PageBytes == 0);
        }
    }
}
