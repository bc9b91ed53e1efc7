// Job: read an mbox one record at a time and give back the message that was delivered into it: the envelope sender
// (from the Return-Path delivery wrote, else the From_ line), the message with CRLF line ends, the "From " quoting
// of the format undone (MboxQuoting: mboxrd exactly; mboxo as well as that format allows), without the
// Return-Path, X-Original-To and Delivered-To lines that spool delivery (Bridge's, or Postfix local(8)'s) put first,
// and without the empty line that ends the record; and the byte offset where the next record starts. Memory holds
// one message, never the mailbox.
// It also says where a record starts (RecordStartAt), for crash recovery's test of what follows an interrupted append:
// the one place a From_ line is recognised when reading. It lives beside the writer (MboxRecord): drain, collect and
// probe read with it, recovery asks it.
// Failure: a file that does not start with a From_ line yields no records (drain then moves nothing).
using System.Buffers;
using System.Text;

namespace Bridge.Delivery.Spool;

/// <param name="Start">Offset of the record's From_ line in the file.</param>
/// <param name="End">Offset where the next record starts (or the end of the file).</param>
public sealed record MboxRecordData(string Sender, ReadOnlySequence<byte> Message, long End)
{
    public long Start { get; init; }

    /// <summary>The record is larger than the reader's limit: Message is empty, and reading stopped here.</summary>
    public bool TooLarge { get; init; }
}

public static class MboxRecords
{
    private static readonly string[] DeliveryHeaders = ["Return-Path: ", "X-Original-To: ", "Delivered-To: "];

    /// <param name="from">The offset <paramref name="mbox"/> is at (a record's start); offsets count from the file's start.</param>
    /// <param name="maxMessageBytes">The largest message given back (memory holds one); a larger one ends the reading
    /// with a TooLarge record (a spool file's owner decides what it holds).</param>
    public static IEnumerable<MboxRecordData> Read(Stream mbox, MboxFormat format = MboxFormat.Mboxrd, long from = 0, long maxMessageBytes = 64L << 20)
    {
        using var reader = new LineReader(mbox, from, maxMessageBytes);
        var line = reader.Next();
        while (line is not null && IsFromLine(line.Value.Bytes))
        {
            var recordStart = line.Value.Start;
            var sender = SenderOf(line.Value.Bytes);
            var message = new ArrayBufferWriter<byte>();
            // The lines spool delivery wrote first, in its order; the sender from Return-Path keeps RFC 5321 quoting.
            var added = 0;
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
                if (message.WrittenCount > maxMessageBytes || reader.LineTooLong)
                {
                    end = line.Value.Start;
                    break; // too large: nothing more is kept in memory
                }
                if (previousEmpty && IsFromLine(bytes))
                {
                    end = line.Value.Start;
                    break;
                }
                if (added < DeliveryHeaders.Length && message.WrittenCount == 0 && !pendingEmpty &&
                    bytes.AsSpan().StartsWith(Encoding.ASCII.GetBytes(DeliveryHeaders[added])))
                {
                    if (added == 0 && bytes.Length >= 15 && bytes[^1] == (byte)'>')
                    {
                        sender = Encoding.UTF8.GetString(bytes, 14, bytes.Length - 15); // Return-Path: <sender>
                    }
                    added++;
                    continue;
                }
                added = DeliveryHeaders.Length;
                if (pendingEmpty)
                {
                    Append(message, []);
                }
                pendingEmpty = bytes.Length == 0; // the last empty line before the next From_ separates records
                if (!pendingEmpty)
                {
                    Append(message, bytes.AsSpan(MboxQuoting.QuoteToDrop(bytes, format)));
                }
                previousEmpty = bytes.Length == 0;
            }
            if (message.WrittenCount > maxMessageBytes || reader.LineTooLong)
            {
                yield return new MboxRecordData(sender, ReadOnlySequence<byte>.Empty, end) { Start = recordStart, TooLarge = true };
                yield break;
            }
            yield return new MboxRecordData(sender, new ReadOnlySequence<byte>(message.WrittenMemory), end) { Start = recordStart };
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

    /// <summary>A From_ line (a record's first line): the one test of it when reading.</summary>
    public static bool IsFromLine(ReadOnlySpan<byte> line) => line.StartsWith("From "u8);

    /// <summary>The bytes needed to see a record start with RecordStartAt: two newlines and "From ".</summary>
    public const int RecordStartWindow = 7;

    /// <summary>Where a record starts in <paramref name="bytes"/> (read at some offset of a mailbox): its From_ line right
    /// there (a writer that appended to a cut-off line), or after one or two newlines (a writer that ended that line
    /// first, as Dovecot does, and the empty line before a record); -1 when the bytes there are no record start.</summary>
    public static int RecordStartAt(ReadOnlySpan<byte> bytes)
    {
        for (var skip = 0; skip <= 2 && skip < bytes.Length; skip++)
        {
            if (IsFromLine(bytes[skip..]))
            {
                return skip;
            }
            if (bytes[skip] != (byte)'\n')
            {
                break;
            }
        }
        return -1;
    }

    /// <summary>"From sender  date" -> sender; MAILER-DAEMON (the null sender) -> "".</summary>
    private static string SenderOf(byte[] line)
    {
        var rest = Encoding.UTF8.GetString(line, 5, line.Length - 5);
        var sender = rest.Split(' ', 2)[0];
        return sender == "MAILER-DAEMON" ? "" : sender;
    }

    private sealed class LineReader(Stream stream, long from, long maxLineBytes) : IDisposable
    {
        private readonly BufferedStream _input = new(stream, 64 * 1024);

        public void Dispose() => _input.Dispose();

        public long Offset { get; private set; } = from;

        /// <summary>A line was longer than the limit: it was cut there (and the reading should stop).</summary>
        public bool LineTooLong { get; private set; }

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
                if (line.Count >= maxLineBytes)
                {
                    LineTooLong = true;
                    return (line.ToArray(), start);
                }
                line.Add((byte)b);
            }
            return line.Count > 0 ? (line.ToArray(), start) : null;
        }
    }
}
