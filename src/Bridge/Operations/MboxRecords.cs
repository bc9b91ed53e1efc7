// Job: read an mbox (mboxo, as Bridge, Postfix and procmail write it) one record at a time: the envelope sender
// from the From_ line, the message with CRLF line ends (without the empty line that ends the record), and the
// byte offset where the next record starts. Memory holds one message, never the mailbox.
// Failure: a file that does not start with a From_ line yields no records (drain then moves nothing).
using System.Buffers;
using System.Text;

namespace Bridge.Operations;

public sealed record MboxRecordData(string Sender, ReadOnlySequence<byte> Message, long End);

public static class MboxRecords
{
    public static IEnumerable<MboxRecordData> Read(Stream mbox)
    {
        using var reader = new LineReader(mbox);
        var line = reader.Next();
        while (line is not null && IsFromLine(line.Value.Bytes))
        {
            var sender = SenderOf(line.Value.Bytes);
            var message = new ArrayBufferWriter<byte>();
            var previousEmpty = false;
            var pendingEmpty = false;
            long end;
            while (true)
            {
                line = reader.Next();
                if (line is null)
                {
                    end = reader.Offset;
                    break;
                }
                var bytes = line.Value.Bytes;
                if (previousEmpty && IsFromLine(bytes))
                {
                    end = line.Value.Start;
                    break;
                }
                if (pendingEmpty)
                {
                    Append(message, []);
                }
                pendingEmpty = bytes.Length == 0; // the last empty line before the next From_ separates records
                if (!pendingEmpty)
                {
                    Append(message, bytes);
                }
                previousEmpty = bytes.Length == 0;
            }
            yield return new MboxRecordData(sender, new ReadOnlySequence<byte>(message.WrittenMemory), end);
        }
    }

    private static void Append(ArrayBufferWriter<byte> message, ReadOnlySpan<byte> line)
    {
        if (message.WrittenCount > 0)
        {
            message.Write("\r\n"u8);
        }
        message.Write(line);
    }

    private static bool IsFromLine(byte[] line) => line.AsSpan().StartsWith("From "u8);

    /// <summary>"From sender  date" -> sender; MAILER-DAEMON (the null sender) -> "".</summary>
    private static string SenderOf(byte[] line)
    {
        var rest = Encoding.UTF8.GetString(line, 5, line.Length - 5);
        var sender = rest.Split(' ', 2)[0];
        return sender == "MAILER-DAEMON" ? "" : sender;
    }

    private sealed class LineReader(Stream stream) : IDisposable
    {
        private readonly BufferedStream _input = new(stream, 64 * 1024);

        public void Dispose() => _input.Dispose();

        public long Offset { get; private set; }

        public (byte[] Bytes, long Start)? Next()
        {
            var start = Offset;
            var line = new List<byte>();
            int b;
            while ((b = _input.ReadByte()) >= 0)
            {
                Offset++;
                if (b == '\n')
                {
                    return (line.ToArray(), start);
                }
                line.Add((byte)b);
            }
            return line.Count > 0 ? (line.ToArray(), start) : null;
        }
    }
}
