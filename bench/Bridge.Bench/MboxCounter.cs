// Job: count the messages in an mbox that another process keeps appending to, reading only the bytes added
// since the last call: every line that begins with "From " starts a record (Postfix and Bridge quote such body
// lines as ">From "). A file that shrank or was replaced is counted again from its start.
// Failure: a missing file counts as 0.
namespace Bridge.Bench;

internal sealed class MboxCounter(string path)
{
    private static readonly byte[] FromSpace = "From "u8.ToArray();
    private readonly byte[] _buffer = new byte[1 << 20];
    private long _offset;
    private long _count;
    private int _matched; // characters of "From " matched at the start of the current line; -1: not at a line start

    public long Count()
    {
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
        }
        catch (FileNotFoundException)
        {
            Restart();
            return 0;
        }
        using (stream)
        {
            if (stream.Length < _offset)
            {
                Restart();
            }
            stream.Position = _offset;
            int n;
            while ((n = stream.Read(_buffer)) > 0)
            {
                Scan(_buffer.AsSpan(0, n));
                _offset += n;
            }
        }
        return _count;
    }

    private void Restart()
    {
        _offset = 0;
        _count = 0;
        _matched = 0;
    }

    private void Scan(ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes)
        {
            if (b == (byte)'\n')
            {
                _matched = 0;
            }
            else if (_matched >= 0)
            {
                _matched = b == FromSpace[_matched] ? _matched + 1 : -1;
                if (_matched == FromSpace.Length)
                {
                    _count++;
                    _matched = -1;
                }
            }
        }
    }
}
