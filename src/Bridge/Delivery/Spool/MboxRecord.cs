// Job: write one mbox record the way Postfix local(8) does: "From sender  asctime" line (spaces in a quoted
// sender become '_' there, so readers find the date; characters beyond ASCII '?'), Return-Path (the sender in RFC 5321 form, quotes kept),
// X-Original-To, Delivered-To, then the message with CRLF -> LF, lines that look like a From_ line quoted by the
// format (MboxQuoting: mboxrd by default, or mboxo exactly as local(8)), Dovecot's bookkeeping headers stripped, a
// final newline and one empty line.
// Streams line by line into a sink; never copies the whole message.
// Failure: the sink's first non-zero errno stops the write and is returned; the caller truncates.
using System.Buffers;
using System.Globalization;
using System.Text;

namespace Bridge.Delivery.Spool;

/// <summary>Receives record bytes; returns 0 or an errno.</summary>
internal interface IRecordSink
{
    int Write(ReadOnlySpan<byte> bytes);
}

internal sealed class CountingSink : IRecordSink
{
    public long Count { get; private set; }

    public int Write(ReadOnlySpan<byte> bytes)
    {
        Count += bytes.Length;
        return 0;
    }
}

internal sealed class MboxRecord
{
    /// <summary>Headers Dovecot asks delivery agents to remove: they are its own mbox bookkeeping.</summary>
    private static readonly string[] StrippedHeaders =
        ["status", "x-status", "x-keywords", "x-imap", "x-imapbase", "x-uid", "content-length"];

    private readonly byte[] _envelope;
    private readonly ReadOnlyMemory<byte> _prefix;
    private readonly ReadOnlySequence<byte> _message;
    private readonly MboxFormat _format;

    /// <param name="prefix">Bytes placed before the message (Bridge's Received header), CRLF-terminated lines.</param>
    /// <param name="message">The message as received: CRLF line ends, without the CRLF that ended DATA.</param>
    /// <param name="format">How lines that look like a From_ line are quoted (MboxQuoting).</param>
    public MboxRecord(string sender, string originalRecipient, string deliveredTo, DateTime localTime,
        ReadOnlyMemory<byte> prefix, ReadOnlySequence<byte> message, MboxFormat format = MboxFormat.Mboxrd)
    {
        _format = format;
        var fromLineSender = sender.Length == 0 ? "MAILER-DAEMON" : Sanitize(sender);
        var envelope = new StringBuilder()
            .Append("From ").Append(fromLineSender).Append("  ").Append(AscTime(localTime)).Append('\n')
            .Append("Return-Path: <").Append(HeaderSafe(sender)).Append(">\n")
            .Append("X-Original-To: ").Append(HeaderSafe(originalRecipient)).Append('\n')
            .Append("Delivered-To: ").Append(HeaderSafe(deliveredTo)).Append('\n');
        _envelope = Encoding.UTF8.GetBytes(envelope.ToString());
        FirstLine = $"From {fromLineSender}  {AscTime(localTime)}";
        _prefix = prefix;
        _message = message;
    }

    /// <summary>The From_ line that starts the record (without its newline).</summary>
    public string FirstLine { get; }

    /// <summary>asctime(3) layout, e.g. "Tue Nov  3 19:57:21 2026".</summary>
    public static string AscTime(DateTime t) =>
        string.Create(CultureInfo.InvariantCulture, $"{t:ddd MMM} {t.Day,2} {t:HH:mm:ss yyyy}");

    /// <summary>Envelope addresses in header fields keep their RFC 5321 form ("john doe"@x.org, quotes and spaces
    /// included); only control characters, which no valid address has, become '_'.</summary>
    public static string HeaderSafe(string value)
    {
        var builder = new StringBuilder(value.Length);
        foreach (var c in value)
        {
            builder.Append(char.IsControl(c) ? '_' : c);
        }
        return builder.ToString();
    }

    /// <summary>The From_ line's sender: no spaces or control characters (readers split the line at spaces).</summary>
    public static string Sanitize(string value)
    {
        var builder = new StringBuilder(value.Length);
        foreach (var c in value)
        {
            // Readers parse the From_ line as ASCII (Python's mailbox fails on anything else): an SMTPUTF8 sender's other
            // characters become '?' there; Return-Path keeps the sender exactly, and drain reads it from there.
            builder.Append(char.IsControl(c) || char.IsWhiteSpace(c) ? '_' : c > '~' ? '?' : c);
        }
        return builder.ToString();
    }

    public long Length
    {
        get
        {
            var counter = new CountingSink();
            WriteTo(counter);
            return counter.Count;
        }
    }

    public int WriteTo(IRecordSink sink)
    {
        var state = new LineState(_format);
        var rc = sink.Write(_envelope);
        if (rc == 0 && !_prefix.IsEmpty)
        {
            rc = WriteLines(new ReadOnlySequence<byte>(_prefix), sink, ref state, tailIsLine: false);
        }
        if (rc == 0 && !_message.IsEmpty)
        {
            // SmtpServer hands over the message without the CRLF that preceded ".": the text after the
            // last LF is therefore always a complete line, even when it is empty.
            rc = WriteLines(_message, sink, ref state, tailIsLine: true);
        }
        return rc == 0 ? sink.Write("\n"u8) : rc;
    }

    private struct LineState
    {
        public bool InHeaders;
        public bool DroppingField;
        public MboxFormat Format;

        public LineState(MboxFormat format)
        {
            InHeaders = true;
            Format = format;
        }
    }

    private static int WriteLines(ReadOnlySequence<byte> input, IRecordSink sink, ref LineState state, bool tailIsLine)
    {
        var reader = new SequenceReader<byte>(input);
        while (true)
        {
            ReadOnlySequence<byte> line;
            if (!reader.TryReadTo(out line, (byte)'\n'))
            {
                if (!tailIsLine)
                {
                    return 0;
                }
                line = reader.UnreadSequence;
                reader.AdvanceToEnd();
                var last = WriteLine(line, crBeforeLf: false, sink, ref state);
                return last;
            }
            var rc = WriteLine(line, crBeforeLf: true, sink, ref state);
            if (rc != 0)
            {
                return rc;
            }
        }
    }

    private static int WriteLine(ReadOnlySequence<byte> line, bool crBeforeLf, IRecordSink sink, ref LineState state)
    {
        if (crBeforeLf && line.Length > 0 && EndsWithCr(line))
        {
            line = line.Slice(0, line.Length - 1);
        }

        Span<byte> head = stackalloc byte[64];
        var headLength = (int)Math.Min(line.Length, head.Length);
        line.Slice(0, headLength).CopyTo(head);
        head = head[..headLength];

        if (state.InHeaders)
        {
            if (line.Length == 0)
            {
                state.InHeaders = false;
                state.DroppingField = false;
            }
            else if (head[0] is (byte)' ' or (byte)'\t')
            {
                if (state.DroppingField)
                {
                    return 0;
                }
            }
            else
            {
                state.DroppingField = IsStrippedField(head);
                if (state.DroppingField)
                {
                    return 0;
                }
            }
        }

        var rc = 0;
        if (MboxQuoting.NeedsQuote(line, state.Format))
        {
            rc = sink.Write(">"u8);
        }
        foreach (var segment in line)
        {
            if (rc != 0)
            {
                return rc;
            }
            rc = sink.Write(segment.Span);
        }
        return rc != 0 ? rc : sink.Write("\n"u8);
    }

    private static bool EndsWithCr(ReadOnlySequence<byte> line)
    {
        var last = line.Slice(line.Length - 1);
        return last.FirstSpan[0] == (byte)'\r';
    }

    private static bool IsStrippedField(ReadOnlySpan<byte> head)
    {
        var colon = head.IndexOf((byte)':');
        if (colon <= 0)
        {
            return false;
        }
        var name = Encoding.ASCII.GetString(head[..colon]).TrimEnd();
        return StrippedHeaders.Contains(name, StringComparer.OrdinalIgnoreCase);
    }
}
