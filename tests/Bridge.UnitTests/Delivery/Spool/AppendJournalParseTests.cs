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
        for (var i = 0; i < pieces; i++)
        {
            var (start, end) = AppendDigest.Piece(before, after, i);
            Assert.True(end == after || end % AppendDigest.PageBytes == 0);
            Assert.True(start == before || start % AppendDigest.PageBytes == 0);
        }
    }
}
