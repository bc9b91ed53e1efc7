// Job: the RFC 5321 section 4.4 trace field Bridge prepends to every message it accepts, e.g.
//   Received: from mta.example ([127.0.0.1])
//           by bridge.localhost (Bridge) with ESMTP id 0B1C2D3E4F5A6B7C
//           for <george@example.com>; Tue, 24 Nov 2026 19:57:21 +0000
// Intake writes it (Build); `mailbridge probe` reads Bridge's queue id back out of a delivered copy (TryReadQueueId):
// the one type that knows the field's shape, in Delivery because both Intake and Operations use it.
// Failure: none; client-supplied text (HELO name) is reduced to printable ASCII without spaces; a message without
// Bridge's field (or a field of another server name) reads as no id.
using System.Text;
using System.Text.RegularExpressions;

namespace Bridge.Delivery;

internal static partial class ReceivedHeader
{
    /// <param name="clientAddress">Null on the LMTP Unix socket (written "local socket").</param>
    /// <param name="protocol">SMTP, ESMTP or LMTP (RFC 3848's "with" keywords).</param>
    public static byte[] Build(string? heloName, string? clientAddress, string serverName, string protocol,
        string queueId, IReadOnlyList<string> recipients, DateTimeOffset now)
    {
        var builder = new StringBuilder("Received: from ")
            .Append(Printable(heloName ?? "unknown"))
            .Append(clientAddress is null ? " (local socket)\r\n" : $" ([{clientAddress}])\r\n")
            .Append("\tby ").Append(serverName).Append(" (Bridge) with ").Append(protocol)
            .Append(" id ").Append(queueId);
        if (recipients.Count == 1)
        {
            builder.Append("\r\n\tfor <").Append(Printable(recipients[0])).Append('>');
        }
        builder.Append("; ").Append(MailDate.Format(now)).Append("\r\n");
        return Encoding.UTF8.GetBytes(builder.ToString());
    }

    /// <summary>The queue id in the Received field this Bridge (<paramref name="serverName"/>) wrote, anywhere in
    /// <paramref name="message"/> (a whole message's text, its header folded as Build folds it).</summary>
    public static bool TryReadQueueId(string message, string serverName, out string queueId)
    {
        var match = Regex.Match(message, $@"\bby {Regex.Escape(serverName)} \(Bridge\) with (?:E?SMTP|LMTP) id ([0-9A-F]+)", RegexOptions.None,
            TimeSpan.FromSeconds(1));
        queueId = match.Success ? match.Groups[1].Value : "";
        return match.Success;
    }

    private static string Printable(string value)
    {
        var builder = new StringBuilder(value.Length);
        foreach (var c in value)
        {
            builder.Append(c is > ' ' and < (char)127 ? c : '_');
        }
        return builder.ToString();
    }
}
