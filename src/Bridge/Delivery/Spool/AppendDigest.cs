// Job: the proof of authorship a journal entry carries: the bytes Bridge is about to append, from absolute file
// offset Before, cut at every multiple of PageBytes and at the end of every record of the batch, and each piece
// hashed (XxHash3, seeded per entry, so no one can craft other bytes with the same hashes without knowing the seed).
// Bridge's writes to a mailbox end only at 64 KiB boundaries or where a record ends (PageAlignedSink), its truncate
// after a write error goes back to where a record starts, and Linux stops a write cut short by a signal at a page
// boundary, so whatever a crash leaves in the file ends where a piece of this digest ends.
// Failure: none; values only.
using System.IO.Hashing;

namespace Bridge.Delivery.Spool;

internal sealed class AppendDigest : IRecordSink
{
    public const int PageBytes = 4096;

    private readonly long _seed;
    private readonly byte[] _page = new byte[PageBytes];
    private readonly List<byte> _hashes = [];
    private readonly List<long> _cuts = [];
    private long _position;
    private int _used;

    public AppendDigest(long start, long seed)
    {
        Start = start;
        _position = start;
        _seed = seed;
    }

    public long Start { get; }

    /// <summary>The absolute offset just after the bytes written so far.</summary>
    public long End => _position;

    /// <summary>Pieces [start, end) is cut into: the first ends at the next page boundary, the last at end.</summary>
    public static int PageCount(long start, long end)
    {
        if (end <= start)
        {
            return 0;
        }
        var firstPage = start / PageBytes;
        var lastPage = (end - 1) / PageBytes;
        return (int)(lastPage - firstPage + 1);
    }

    /// <summary>The pieces [before, after) is cut into: at every page boundary and at each of <paramref name="cuts"/>
    /// (record ends inside a page, ascending), in file order.</summary>
    public static IEnumerable<(long Start, long End)> Pieces(long before, long after, IReadOnlyList<long> cuts)
    {
        var start = before;
        var next = 0;
        while (start < after)
        {
            var end = Math.Min(after, ((start / PageBytes) + 1) * PageBytes);
            while (next < cuts.Count && cuts[next] <= start)
            {
                next++;
            }
            if (next < cuts.Count && cuts[next] < end)
            {
                end = cuts[next];
            }
            yield return (start, end);
            start = end;
        }
    }

    public static ulong Hash(ReadOnlySpan<byte> piece, long seed) => XxHash3.HashToUInt64(piece, seed);

    public int Write(ReadOnlySpan<byte> bytes)
    {
        while (bytes.Length > 0)
        {
            var room = (int)(PageBytes - (_position % PageBytes));
            var n = Math.Min(room, bytes.Length);
            bytes[..n].CopyTo(_page.AsSpan(_used));
            _used += n;
            _position += n;
            bytes = bytes[n..];
            if (_position % PageBytes == 0)
            {
                Seal();
            }
        }
        return 0;
    }

    /// <summary>A record ends here: the piece ends too (unless a page just ended), so a file that ends here is proof.</summary>
    public void EndRecord()
    {
        if (_used > 0)
        {
            _cuts.Add(_position);
            Seal();
        }
    }

    /// <summary>The record ends inside pages (in file order), the batch's own end left out.</summary>
    public long[] Cuts => [.. _cuts.Where(c => c < _position)];

    /// <summary>The hashes of all pieces, the last (partial) one included.</summary>
    public byte[] Finish()
    {
        if (_used > 0)
        {
            Seal();
        }
        return [.. _hashes];
    }

    private void Seal()
    {
        var hash = Hash(_page.AsSpan(0, _used), _seed);
        Span<byte> bytes = stackalloc byte[8];
        BitConverter.TryWriteBytes(bytes, hash);
        foreach (var b in bytes)
        {
            _hashes.Add(b);
        }
        _used = 0;
    }

    /// <summary>The journal entry for records appended from <paramref name="before"/> in this order, and each record's
    /// length (the digest reads every byte anyway, so the size check needs no pass of its own).</summary>
    public static AppendJournalEntry EntryFor(Native.FileStat mailbox, long before, IReadOnlyList<MboxRecord> records, out long[] lengths)
    {
        Span<byte> random = stackalloc byte[8];
        System.Security.Cryptography.RandomNumberGenerator.Fill(random);
        var seed = BitConverter.ToInt64(random);
        var digest = new AppendDigest(before, seed);
        lengths = new long[records.Count];
        for (var i = 0; i < records.Count; i++)
        {
            var start = digest.End;
            records[i].WriteTo(digest);
            digest.EndRecord();
            lengths[i] = digest.End - start;
        }
        var hashes = digest.Finish();
        return new AppendJournalEntry(mailbox.Device, mailbox.Inode, before, digest.End, seed, hashes) { Cuts = digest.Cuts };
    }
}
