// Job: read the header section of a received message once: how many Received: fields it has (loop limit)
// and the Delivered-To: values (mail loop detection by the spool agent). Folded fields are unfolded.
// Linear in the size of the header section whatever its layout: each line is looked at once, only the first bytes
// of a field decide its name, continuation lines of other fields are skipped without copying, and a Delivered-To
// value is kept only up to MaxValue characters (an address; anything longer is no address to compare).
// Failure: none; a message without a header/body separator is scanned to its end.
using System.Buffers;
using System.Text;
using Bridge.Delivery;

namespace Bridge.Intake;

internal static class HeaderSummaryReader
{
    internal const int MaxValue = 1024;

    public static MessageHeaderSummary Read(ReadOnlySequence<byte> message)
    {
        var received = 0;
        var deliveredTo = new List<string>();
        var reader = new SequenceReader<byte>(message);
        StringBuilder? value = null; // the Delivered-To field being unfolded, if the current field is one
        Span<byte> head = stackalloc byte[16];

        while (!reader.End)
        {
            if (!reader.TryReadTo(out ReadOnlySequence<byte> raw, (byte)'\n'))
            {
                raw = reader.UnreadSequence;
                reader.AdvanceToEnd();
            }
            var length = raw.Length;
            if (length > 0 && EndsWithCr(raw))
            {
                length--;
            }
            if (length == 0)
            {
                break; // the end of the header section
            }
            var first = raw.FirstSpan.Length > 0 ? raw.FirstSpan[0] : raw.Slice(0, 1).ToArray()[0];
            if (first is (byte)' ' or (byte)'\t')
            {
                if (value is not null && value.Length < MaxValue)
                {
                    value.Append(' ').Append(Latin1(raw.Slice(0, Math.Min(length, MaxValue))).Trim());
                }
                continue;
            }
            Finish(value);
            value = null;
            var headLength = (int)Math.Min(length, head.Length);
            raw.Slice(0, headLength).CopyTo(head);
            var name = head[..headLength];
            if (IsField(name, "received:"u8))
            {
                received++;
            }
            else if (IsField(name, "delivered-to:"u8))
            {
                var colon = name.IndexOf((byte)':');
                value = new StringBuilder(Latin1(raw.Slice(colon + 1, Math.Min(length - colon - 1, MaxValue))));
            }
        }
        Finish(value);
        return new MessageHeaderSummary(received, deliveredTo);

        void Finish(StringBuilder? complete)
        {
            if (complete is not null)
            {
                deliveredTo.Add(complete.ToString().Trim().Trim('<', '>'));
            }
        }
    }

    /// <summary>The line starts with the field name, case-insensitive, optionally with spaces before the colon.</summary>
    private static bool IsField(ReadOnlySpan<byte> head, ReadOnlySpan<byte> nameWithColon)
    {
        var name = nameWithColon[..^1];
        if (head.Length <= name.Length)
        {
            return false;
        }
        for (var i = 0; i < name.Length; i++)
        {
            if ((head[i] | 0x20) != name[i])
            {
                return false;
            }
        }
        var rest = head[name.Length..];
        var at = 0;
        while (at < rest.Length && rest[at] is (byte)' ' or (byte)'\t')
        {
            at++;
        }
        return at < rest.Length && rest[at] == (byte)':';
    }

    private static bool EndsWithCr(ReadOnlySequence<byte> line) => line.Slice(line.Length - 1).FirstSpan[0] == (byte)'\r';

    private static string Latin1(ReadOnlySequence<byte> bytes) => Encoding.Latin1.GetString(bytes).TrimEnd('\r');
}
