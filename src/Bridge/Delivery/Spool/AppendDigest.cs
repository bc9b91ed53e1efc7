// Job: the proof of authorship a journal entry carries: the bytes Bridge is about to append, from absolute file
// offset Before, cut at every multiple of PageBytes and each piece hashed (XxHash3, seeded per entry, so no one can
// craft other bytes with the same hashes without knowing the seed). Bridge's writes to a mailbox also end only at
// page boundaries (PageAlignedSink), and Linux stops a write cut short by a signal at a page boundary too,
// so whatever a crash leaves in the file ends where a page of this digest ends, or where the whole append ends.
// Failure: none; values only.
using System.IO.Hashing;

namespace Bridge.Delivery.Spool;

internal sealed class AppendDigest : IRecordSink
{
    public const int PageBytes = 4096;

    private readonly long _seed;
    private readonly byte[] _page = new byte[PageBytes];
    private readonly List<byte> _hashes = [];
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

    /// <summary>Absolute [start, end) of piece <paramref name="index"/> of an append [before, after).</summary>
    public static (long Start, long End) Piece(long before, long after, int index)
    {
        var start = index == 0 ? before : ((before / PageBytes) + index) * PageBytes;
        var end = Math.Min(after, ((before / PageBytes) + index + 1) * PageBytes);
        return (start, end);
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
            lengths[i] = digest.End - start;
        }
        return new AppendJournalEntry(mailbox.Device, mailbox.Inode, before, digest.End, seed, digest.Finish());
    }
}
