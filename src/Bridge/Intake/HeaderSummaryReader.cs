// Job: read the header section of a received message once: how many Received: fields it has (loop limit)
// and the Delivered-To: values (mail loop detection by the spool agent). Folded fields are unfolded.
// Failure: none; a message without a header/body separator is scanned to its end.
using System.Buffers;
using System.Text;
using Bridge.Delivery;

namespace Bridge.Intake;

internal static class HeaderSummaryReader
{
    public static MessageHeaderSummary Read(ReadOnlySequence<byte> message)
    {
        var received = 0;
        var deliveredTo = new List<string>();
        var reader = new SequenceReader<byte>(message);
        string? field = null;

        while (!reader.End)
        {
            if (!reader.TryReadTo(out ReadOnlySequence<byte> raw, (byte)'\n'))
            {
                raw = reader.UnreadSequence;
                reader.AdvanceToEnd();
            }
            var line = Encoding.Latin1.GetString(raw).TrimEnd('\r');
            if (line.Length == 0)
            {
                break;
            }
            if (line[0] is ' ' or '\t')
            {
                if (field is not null)
                {
                    field += " " + line.Trim();
                }
                continue;
            }
            Finish(field);
            field = line;
        }
        Finish(field);
        return new MessageHeaderSummary(received, deliveredTo);

        void Finish(string? complete)
        {
            if (complete is null)
            {
                return;
            }
            var colon = complete.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                return;
            }
            var name = complete[..colon].TrimEnd();
            if (name.Equals("Received", StringComparison.OrdinalIgnoreCase))
            {
                received++;
            }
            else if (name.Equals("Delivered-To", StringComparison.OrdinalIgnoreCase))
            {
                deliveredTo.Add(complete[(colon + 1)..].Trim().Trim('<', '>'));
            }
        }
    }
}
