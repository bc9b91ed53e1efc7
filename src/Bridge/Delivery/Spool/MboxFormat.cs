// Job: the one rule for "From " lines inside mbox records, both ways. mboxrd (Bridge's default): every line that is
// ">"* followed by "From " gets one more ">" when written, and loses one when read, so a record gives back exactly
// the lines it was given. mboxo (as Postfix local(8) writes): only "From " gets a ">", and reading takes one from
// ">From ", which cannot tell a quoted "From " from a ">From " the message had (the format's known loss).
// Failure: none; pure.
using System.Buffers;

namespace Bridge.Delivery.Spool;

public enum MboxFormat
{
    Mboxrd,
    Mboxo,
}

public static class MboxQuoting
{
    private static readonly byte[] FromSpace = "From "u8.ToArray();

    /// <summary>Whether the line (without its line end) is written with one more "&gt;" in front.</summary>
    public static bool NeedsQuote(ReadOnlySequence<byte> line, MboxFormat format)
    {
        var reader = new SequenceReader<byte>(line);
        if (format == MboxFormat.Mboxrd)
        {
            reader.AdvancePast((byte)'>');
        }
        return reader.IsNext(FromSpace);
    }

    /// <summary>How many leading bytes of a line read from a record are quoting to drop (0 or 1).</summary>
    public static int QuoteToDrop(ReadOnlySpan<byte> line, MboxFormat format)
    {
        if (line.Length == 0 || line[0] != (byte)'>')
        {
            return 0;
        }
        var quotes = format == MboxFormat.Mboxrd ? line.IndexOfAnyExcept((byte)'>') : 1;
        return quotes > 0 && line[quotes..].StartsWith(FromSpace) ? 1 : 0;
    }
}
