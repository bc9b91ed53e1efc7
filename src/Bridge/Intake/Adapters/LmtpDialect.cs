// Job: make SmtpServer speak LMTP (RFC 2033) on an LMTP socket, at the level of command lines: LHLO reaches it as EHLO
// (same syntax, same reply); HELO and EHLO, which an LMTP server must not accept, reach it as NOOP and their reply is
// replaced by "500 5.5.1" (Replies.UseLhlo, through SessionWire.NextReplyOverride). The other half, one reply per recipient after the message,
// is MessageIntake's (SessionWire.RecipientReplies, written by ReplyTextStream).
// Corrects: the library has no LHLO command and no way to add one (SmtpCommand.ExecuteAsync is internal).
// Failure: none; pure.
using System.Text;

namespace Bridge.Intake.Adapters;

internal static class LmtpDialect
{
    private static readonly byte[] Noop = "NOOP\r\n"u8.ToArray();

    /// <summary>The line SmtpServer is to see for <paramref name="line"/> (null: unchanged), and the reply that must
    /// replace SmtpServer's own (null: none).</summary>
    public static (byte[]? Line, string? Reply) Translate(ReadOnlySpan<byte> line)
    {
        if (Verb(line, "LHLO"u8))
        {
            var copy = line.ToArray();
            Encoding.ASCII.GetBytes("EHLO").CopyTo(copy, 0);
            return (copy, null);
        }
        if (Verb(line, "HELO"u8) || Verb(line, "EHLO"u8))
        {
            return (Noop, Replies.UseLhlo);
        }
        return (null, null);
    }

    private static bool Verb(ReadOnlySpan<byte> line, ReadOnlySpan<byte> verb)
    {
        if (line.Length < verb.Length || (line.Length > verb.Length && line[verb.Length] is not ((byte)' ' or (byte)'\r' or (byte)'\n')))
        {
            return false;
        }
        for (var i = 0; i < verb.Length; i++)
        {
            if ((line[i] | 0x20) != (verb[i] | 0x20))
            {
                return false;
            }
        }
        return true;
    }
}
