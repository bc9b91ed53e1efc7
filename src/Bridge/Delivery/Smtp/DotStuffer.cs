// Job: SMTP transparency (RFC 5321 section 4.5.2) for a message that arrives in segments: every line that begins
// with "." gets a second "." in front, also when the CRLF before it, or the CR and LF of that CRLF, end one segment
// and the dot begins the next. A bare LF is not a line end. Emits slices of the input and a shared "." instead of
// copying the message.
// Failure: none; pure.
namespace Bridge.Delivery.Smtp;

internal sealed class DotStuffer
{
    private static readonly ReadOnlyMemory<byte> Dot = "."u8.ToArray();

    private LineState _line = LineState.AtLineStart;

    private enum LineState
    {
        MidLine,
        AfterCr,
        AtLineStart,
    }

    /// <summary>Appends to <paramref name="pieces"/> what to write for <paramref name="bytes"/>, the next segment.</summary>
    public void Stuff(ReadOnlyMemory<byte> bytes, List<ReadOnlyMemory<byte>> pieces)
    {
        if (bytes.IsEmpty)
        {
            return;
        }
        var rest = bytes;
        if (_line == LineState.AfterCr && rest.Span[0] == (byte)'\n')
        {
            pieces.Add(rest[..1]); // a CRLF split between two segments
            rest = rest[1..];
            _line = LineState.AtLineStart;
            if (rest.IsEmpty)
            {
                return;
            }
        }
        if (_line == LineState.AtLineStart && rest.Span[0] == (byte)'.')
        {
            pieces.Add(Dot);
        }
        int at;
        while ((at = rest.Span.IndexOf("\r\n."u8)) >= 0) // vectorised search instead of a byte-by-byte state machine
        {
            pieces.Add(rest[..(at + 2)]);
            pieces.Add(Dot);
            rest = rest[(at + 2)..];
        }
        if (!rest.IsEmpty)
        {
            pieces.Add(rest);
        }
        var span = bytes.Span;
        _line = span[^1] == (byte)'\r' ? LineState.AfterCr
            : span.Length >= 2 && span[^2] == (byte)'\r' && span[^1] == (byte)'\n' ? LineState.AtLineStart
            : LineState.MidLine;
    }
}
