// Job: the soak's messages: each one's bytes (drawn from the run's random source: sizes from 1 KB to 5 MB, 8-bit
// UTF-8 lines, "From " and ">From " lines, lines of dots), its id (X-Soak and Message-Id), and the fingerprint a
// delivered copy must match: a hash of the client's own header fields in their order and of the body, line ends as
// LF and trailing newlines dropped (delivery adds header fields, never changes these), after undoing the spool's
// mboxrd quoting where the copy came from an mbox.
// Failure: none; pure functions.
using System.Security.Cryptography;
using System.Text;

namespace Bridge.Soak;

internal static class SoakMessage
{
    private static readonly string[] Words = ["mail", "bridge", "spool", "store", "lock", "fsync", "queue", "relay", "mbox", "inode"];
    private static readonly string[] Specials = ["From the start of a line", ">From a quoted line", ">>From twice quoted", ".", "..", ". a dot line",
        "Grüße aus Köln — façade, naïve, 日本語", "From: looks like a header", ""];

    /// <summary>The header fields Build writes (each on one line), compared in every delivered copy.</summary>
    private static readonly string[] SentFields = ["From: ", "To: ", "Subject: ", "Message-Id: ", "X-Soak: ", "MIME-Version: ", "Content-Type: ",
        "Content-Transfer-Encoding: "];

    /// <summary>The size of the next message: mostly small, sometimes large, rarely up to 5 MB.</summary>
    public static int Size(Random random) => random.Next(100) switch
    {
        < 70 => random.Next(1_000, 8_000),
        < 90 => random.Next(8_000, 100_000),
        < 98 => random.Next(100_000, 1_000_000),
        _ => random.Next(1_000_000, 5_000_000),
    };

    /// <summary>The message as the client sends it (CRLF line ends, not yet dot-stuffed).</summary>
    public static byte[] Build(string id, IReadOnlyList<string> recipients, int size, Random random)
    {
        var text = new StringBuilder();
        text.Append("From: Soak Sender <sender@example.org>\r\n");
        text.Append("To: ").Append(string.Join(", ", recipients)).Append("\r\n");
        text.Append("Subject: soak ").Append(id).Append("\r\n");
        text.Append("Message-Id: <").Append(id).Append("@soak.test>\r\n");
        text.Append("X-Soak: ").Append(id).Append("\r\n");
        text.Append("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
        var bodyStart = text.Length;
        while (text.Length - bodyStart < size)
        {
            if (random.Next(8) == 0)
            {
                text.Append(Specials[random.Next(Specials.Length)]);
            }
            else
            {
                for (var w = random.Next(3, 12); w > 0; w--)
                {
                    text.Append(Words[random.Next(Words.Length)]).Append(' ');
                }
            }
            text.Append("\r\n");
        }
        text.Append("end of ").Append(id).Append("\r\n");
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>The fingerprint of a message's body (the bytes after the first empty line).</summary>
    public static string Fingerprint(byte[] message, bool fromMboxrd)
    {
        var text = Encoding.UTF8.GetString(message).Replace("\r\n", "\n", StringComparison.Ordinal);
        var start = text.IndexOf("\n\n", StringComparison.Ordinal);
        var body = start < 0 ? "" : text[(start + 2)..];
        // The client's own header fields, in their order (delivery adds others: Received, Return-Path, Delivered-To,
        // X-Original-To, Postfix's Date, Dovecot's Status and X-UID; those are left out, never these).
        var head = string.Join('\n', (start < 0 ? text : text[..start]).Split('\n')
            .Where(l => SentFields.Any(f => l.StartsWith(f, StringComparison.OrdinalIgnoreCase))));
        if (fromMboxrd)
        {
            var lines = body.Split('\n');
            for (var i = 0; i < lines.Length; i++)
            {
                var from = lines[i].TrimStart('>');
                if (lines[i].StartsWith('>') && from.StartsWith("From ", StringComparison.Ordinal))
                {
                    lines[i] = lines[i][1..];
                }
            }
            body = string.Join('\n', lines);
        }
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(head + "\n\n" + body.TrimEnd('\n'))));
    }

    /// <summary>The X-Soak id of a delivered copy, or null.</summary>
    public static string? IdOf(byte[] message)
    {
        var head = Encoding.UTF8.GetString(message, 0, Math.Min(message.Length, 16_384)).Replace("\r\n", "\n", StringComparison.Ordinal);
        var end = head.IndexOf("\n\n", StringComparison.Ordinal);
        foreach (var line in (end < 0 ? head : head[..end]).Split('\n'))
        {
            if (line.StartsWith("X-Soak: ", StringComparison.OrdinalIgnoreCase))
            {
                return line[8..].Trim();
            }
        }
        return null;
    }

    /// <summary>Dot-stuffed for DATA, with the final dot.</summary>
    public static byte[] ForData(byte[] message)
    {
        var output = new MemoryStream(message.Length + 1024);
        var lineStart = true;
        foreach (var b in message)
        {
            if (lineStart && b == (byte)'.')
            {
                output.WriteByte((byte)'.');
            }
            output.WriteByte(b);
            lineStart = b == (byte)'\n';
        }
        output.Write(".\r\n"u8);
        return output.ToArray();
    }
}
