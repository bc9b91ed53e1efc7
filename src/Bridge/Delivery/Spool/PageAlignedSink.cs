// Job: write record bytes to a mailbox in writes that end at absolute multiples of 64 KiB (or at the record's end),
// so a crash between two writes leaves the file ending on a page boundary of the journal's AppendDigest.
// Failure: Write/Flush return the first errno of write(2); the bytes not written are dropped (the caller truncates).
using Bridge.Native;

namespace Bridge.Delivery.Spool;

internal sealed class PageAlignedSink(int fd, long position) : IRecordSink
{
    private const int Chunk = 64 * 1024;
    private readonly byte[] _buffer = new byte[Chunk];
    private int _used;
    private int _limit = (int)(Chunk - (position % Chunk));

    /// <summary>The file offset after the last byte written.</summary>
    public long Position { get; private set; } = position;

    public int Write(ReadOnlySpan<byte> bytes)
    {
        while (bytes.Length > 0)
        {
            if (_used == _limit)
            {
                var rc = Flush();
                if (rc != 0)
                {
                    return rc;
                }
            }
            var n = Math.Min(bytes.Length, _limit - _used);
            bytes[..n].CopyTo(_buffer.AsSpan(_used));
            _used += n;
            bytes = bytes[n..];
        }
        return 0;
    }

    public int Flush()
    {
        var rc = Libc.WriteAll(fd, _buffer.AsSpan(0, _used));
        if (rc == 0)
        {
            Position += _used;
        }
        _used = 0;
        _limit = (int)(Chunk - (Position % Chunk));
        return rc;
    }
}
