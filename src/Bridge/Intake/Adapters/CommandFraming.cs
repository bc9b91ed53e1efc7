// Job: what the library reads of a session, framed: commands one line per read, each MAIL/RCPT line through
// CommandScreen (malformed or unoffered parameters get their RFC reply instead of crashing the session; the verdict
// is left on the SessionWire), and on an LMTP session every line through LmtpDialect (LHLO); message bytes (after a
// 354, up to the "CRLF.CRLF" that ends them) pass unchanged and in bulk. It owns the bytes read from the socket and
// not yet handed on.
// Corrects: the library parses whatever a read gives it, and throws on parameters it does not expect.
// Failure: none; a line it does not understand is handed on unchanged for the library to answer.
namespace Bridge.Intake.Adapters;

internal sealed class CommandFraming(long maxMessageBytes, SessionWire? session, Action unitHandedOn)
{
    private static readonly byte[] EndOfData = "\r\n.\r\n"u8.ToArray();

    private byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;
    private byte[]? _pending;
    private int _pendingAt;
    private bool _inData;
    private int _endMatch;

    /// <summary>The client got an answer; <paramref name="opensData"/> when it was 354 (message bytes follow).</summary>
    public void ReplyWritten(bool opensData)
    {
        _inData = opensData;
        _endMatch = opensData ? 2 : 0; // the CRLF that ended the DATA command: "." CRLF right away ends an empty message
    }

    /// <summary>The next bytes for the library (a line, part of one, or message bytes), or 0 when more input is needed.</summary>
    public int HandOut(Span<byte> destination)
    {
        while (true)
        {
            if (_pending is not null)
            {
                var n = Math.Min(destination.Length, _pending.Length - _pendingAt);
                _pending.AsSpan(_pendingAt, n).CopyTo(destination);
                _pendingAt += n;
                if (_pendingAt == _pending.Length)
                {
                    _pending = null;
                }
                return n;
            }
            if (_start >= _end)
            {
                return 0;
            }
            var handed = _inData ? HandOutData(destination) : HandOutLine(destination);
            if (handed > 0 || _pending is null)
            {
                return handed;
            }
        }
    }

    /// <summary>At the end of input: the client's last bytes without a line end (the library sees them, then the end).</summary>
    public int HandOutRest(Span<byte> destination)
    {
        if (_start >= _end || _inData)
        {
            return 0;
        }
        var rest = Math.Min(destination.Length, _end - _start);
        _buffer.AsSpan(_start, rest).CopyTo(destination);
        _start += rest;
        return rest;
    }

    /// <summary>Room for the next read of the socket (the buffer grows for a long command line; MaxLineBytes bounds it).</summary>
    public Memory<byte> Space()
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
        }
        return _buffer.AsMemory(_end, Math.Min(_buffer.Length - _end, 64 * 1024));
    }

    /// <summary><paramref name="read"/> bytes were read into Space().</summary>
    public void Filled(int read) => _end += read;

    /// <summary>Forgets everything not handed on (the session is being closed).</summary>
    public void Clear()
    {
        _start = _end = 0;
        _pending = null;
    }

    /// <summary>Message bytes up to and including the CRLF "." CRLF that ends them (then back to commands).</summary>
    private int HandOutData(Span<byte> destination)
    {
        var available = _buffer.AsSpan(_start, _end - _start);
        var stop = Scan(available, _endMatch, out var tail);
        var give = stop >= 0 ? stop : available.Length;
        var n = Math.Min(give, destination.Length);
        available[..n].CopyTo(destination);
        if (n == give)
        {
            if (stop >= 0)
            {
                _inData = false;
                _endMatch = 0;
                unitHandedOn(); // the message is complete: Bridge delivers it now
            }
            else
            {
                _endMatch = tail;
            }
        }
        else
        {
            Scan(available[..n], _endMatch, out tail);
            _endMatch = tail;
        }
        _start += n;
        return n;
    }

    /// <summary>One complete command line (screened), or 0 when the buffer holds no line end yet (or it is pending).</summary>
    private int HandOutLine(Span<byte> destination)
    {
        var available = _buffer.AsSpan(_start, _end - _start);
        var lf = available.IndexOf((byte)'\n');
        if (lf < 0)
        {
            return 0;
        }
        var line = available[..(lf + 1)];
        _start += lf + 1;
        unitHandedOn();
        ReadOnlySpan<byte> output = line;
        if (session is not null)
        {
            var verdict = CommandScreen.Screen(line, maxMessageBytes, session.Smtputf8);
            if (verdict.Smtputf8 is { } utf8)
            {
                session.Smtputf8 = utf8; // a MAIL line: its transaction's addresses may be UTF-8 when it asked SMTPUTF8
            }
            session.ScreenedLine = verdict;
            if (verdict.Replacement is not null)
            {
                output = verdict.Replacement;
            }
            if (session.State.Lmtp && LmtpDialect.Translate(line) is ({ } translated, var reply))
            {
                output = translated;
                session.NextReplyOverride = reply;
            }
        }
        if (output.Length <= destination.Length)
        {
            output.CopyTo(destination);
            return output.Length;
        }
        _pending = output.ToArray();
        _pendingAt = 0;
        return 0;
    }

    /// <summary>Index just after "CRLF.CRLF" in <paramref name="span"/> given <paramref name="state"/> bytes of it
    /// already seen before, or -1 with the state at the span's end in <paramref name="tail"/>.</summary>
    internal static int Scan(ReadOnlySpan<byte> span, int state, out int tail)
    {
        tail = 0;
        var found = -1;
        if (state > 0)
        {
            var s = state;
            for (var i = 0; i < span.Length && i < EndOfData.Length - state; i++)
            {
                s = Step(s, span[i]);
                if (s == EndOfData.Length)
                {
                    return i + 1;
                }
                if (s == 0)
                {
                    break;
                }
            }
        }
        var at = span.IndexOf(EndOfData);
        if (at >= 0)
        {
            found = at + EndOfData.Length;
            return found;
        }
        if (span.Length < EndOfData.Length - 1)
        {
            var s = state;
            foreach (var b in span)
            {
                s = Step(s, b);
            }
            tail = s;
            return -1;
        }
        var t = 0;
        foreach (var b in span[^(EndOfData.Length - 1)..])
        {
            t = Step(t, b);
        }
        tail = t;
        return -1;

        static int Step(int s, byte b) => b == EndOfData[s] ? s + 1 : b == (byte)'\r' ? 1 : 0;
    }
}
