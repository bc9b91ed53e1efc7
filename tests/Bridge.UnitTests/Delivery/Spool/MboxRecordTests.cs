using System.Buffers;
using System.Text;
using Bridge.Delivery.Spool;

namespace Bridge.UnitTests.Delivery.Spool;

public class MboxRecordTests
{
    private sealed class Collect : IRecordSink
    {
        public List<byte> Bytes { get; } = [];

        public int Write(ReadOnlySpan<byte> bytes)
        {
            Bytes.AddRange(bytes.ToArray());
            return 0;
        }
    }

    private static readonly DateTime When = new(2026, 11, 3, 19, 57, 21, DateTimeKind.Local);

    private static string Render(string message, string sender = "a@example.org", string prefix = "", MboxFormat format = MboxFormat.Mboxrd)
    {
        var record = new MboxRecord(sender, "gw+x@afp548.com", "george@afp548.com", When,
            Encoding.UTF8.GetBytes(prefix), new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(message)), format);
        var sink = new Collect();
        Assert.Equal(0, record.WriteTo(sink));
        Assert.Equal(sink.Bytes.Count, record.Length);
        return Encoding.UTF8.GetString([.. sink.Bytes]);
    }

    [Fact]
    public void Writes_the_envelope_lines_postfix_writes()
    {
        var text = Render("Subject: hi\r\n\r\nbody");
        Assert.Equal(
            "From a@example.org  Tue Nov  3 19:57:21 2026\n" +
            "Return-Path: <a@example.org>\n" +
            "X-Original-To: gw+x@afp548.com\n" +
            "Delivered-To: george@afp548.com\n" +
            "Subject: hi\n\nbody\n\n", text);
    }

    [Fact]
    public void Empty_sender_is_mailer_daemon() =>
        Assert.StartsWith("From MAILER-DAEMON  Tue Nov  3 19:57:21 2026\nReturn-Path: <>\n", Render("S: x\r\n\r\nb", sender: ""));

    [Fact]
    public void Sender_with_spaces_or_controls_cannot_break_the_from_line_or_a_header() =>
        Assert.StartsWith("From a_b__x@y  Tue Nov  3 19:57:21 2026\nReturn-Path: <a b__x@y>\n", Render("S: x\r\n\r\nb", sender: "a b\u0001\nx@y"));

    [Fact]
    public void A_quoted_sender_keeps_its_quotes_in_Return_Path_and_has_no_space_in_the_from_line() =>
        Assert.StartsWith("From \"john_doe\"@x.org  Tue Nov  3 19:57:21 2026\nReturn-Path: <\"john doe\"@x.org>\n",
            Render("S: x\r\n\r\nb", sender: "\"john doe\"@x.org"));

    [Fact]
    public void Mboxo_quotes_every_line_that_begins_with_From_space_as_postfix_local_does()
    {
        var text = Render("Subject: q\r\n\r\nFrom here\r\n>From there\r\nFrom\r\n From x\r\nFrom ", format: MboxFormat.Mboxo);
        Assert.EndsWith("\n\n>From here\n>From there\nFrom\n From x\n>From \n\n", text);
    }

    [Fact]
    public void Mboxrd_the_default_quotes_every_line_of_quote_marks_and_From_space_once_more()
    {
        var text = Render("Subject: q\r\n\r\nFrom here\r\n>From there\r\n>>>From far\r\nFrom\r\n From x\r\n>From\r\n>> From\r\nFrom ");
        Assert.EndsWith("\n\n>From here\n>>From there\n>>>>From far\nFrom\n From x\n>From\n>> From\n>From \n\n", text);
    }

    [Fact]
    public void Converts_crlf_and_keeps_a_lone_cr()
    {
        var text = Render("A: 1\r\n\r\nx\ry\r\nz");
        Assert.EndsWith("A: 1\n\nx\ry\nz\n\n", text);
        Assert.DoesNotContain("\r\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void The_line_before_the_end_of_data_is_kept_even_when_empty() =>
        Assert.EndsWith("A: 1\n\nbody\n\n\n", Render("A: 1\r\n\r\nbody\r\n"));

    [Fact]
    public void Strips_dovecot_bookkeeping_headers_with_their_continuations_but_not_from_the_body()
    {
        var text = Render("Status: RO\r\nX-UID: 5\r\nSubject: s\r\nX-Keywords: a\r\n b\r\nContent-Length: 3\r\nX-IMAPbase : 1 2\r\nTo: t\r\n\r\nStatus: body line\r\n");
        Assert.EndsWith("Delivered-To: george@afp548.com\nSubject: s\nTo: t\n\nStatus: body line\n\n\n", text);
    }

    [Fact]
    public void Prefix_header_goes_before_the_message()
    {
        var text = Render("Subject: s\r\n\r\nb", prefix: "Received: from x\r\n\tby y; date\r\n");
        Assert.Contains("Delivered-To: george@afp548.com\nReceived: from x\n\tby y; date\nSubject: s\n\nb\n\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Eight_bit_bytes_pass_unchanged()
    {
        var record = new MboxRecord("a@b", "r@c", "r@c", When, default,
            new ReadOnlySequence<byte>([(byte)'S', (byte)':', (byte)' ', 0xE9, 13, 10, 13, 10, 0xFF, 0x00, 0xC3, 0xA9]));
        var sink = new Collect();
        record.WriteTo(sink);
        Assert.Equal(new byte[] { (byte)'S', (byte)':', (byte)' ', 0xE9, 10, 10, 0xFF, 0x00, 0xC3, 0xA9, 10, 10 },
            sink.Bytes.Skip(sink.Bytes.Count - 12).ToArray());
    }

    [Fact]
    public void Lines_split_across_buffer_segments_are_handled()
    {
        var first = new Segment("Subject: s\r\n\r\nFr"u8.ToArray());
        var last = first.Append("om split\r\nend"u8.ToArray());
        var record = new MboxRecord("a@b", "r@c", "r@c", When, default, new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length));
        var sink = new Collect();
        record.WriteTo(sink);
        Assert.EndsWith("\n\n>From split\nend\n\n", Encoding.UTF8.GetString([.. sink.Bytes]));
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] bytes) => Memory = bytes;

        public Segment Append(byte[] bytes)
        {
            var next = new Segment(bytes) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
