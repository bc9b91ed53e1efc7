using System.Buffers;
using System.Text;
using Bridge.Delivery.Spool;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>Pure logic: what drain reads back from a record is the message that was delivered into it, byte for byte.</summary>
public class MboxRecordsTests
{
    private static byte[] Spool(MboxFormat format, string sender, params string[] messages)
    {
        var bytes = new List<byte>();
        foreach (var message in messages)
        {
            var record = new MboxRecord(sender, "orig@example.org", "bob@example.org", new DateTime(2026, 12, 1, 9, 0, 0),
                Encoding.ASCII.GetBytes("Received: from client.test\r\n\tby bridge.localhost (Bridge) with ESMTP id 1\r\n"),
                new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(message)), format);
            var sink = new Sink(bytes);
            Assert.Equal(0, record.WriteTo(sink));
        }
        return [.. bytes];
    }

    private sealed class Sink(List<byte> bytes) : IRecordSink
    {
        public int Write(ReadOnlySpan<byte> span)
        {
            bytes.AddRange(span.ToArray());
            return 0;
        }
    }

    private const string Tricky = "Subject: caf\u00e9\r\nFrom: x@example.org\r\n\r\nFrom the start\r\n>From once\r\n>>From twice\r\n" +
        ">>>From thrice\r\n>not from\r\n\r\nFrom\r\n\r\n\r\nlast line";

    [Fact]
    public void Mboxrd_gives_every_message_back_exactly_without_the_delivery_headers()
    {
        var mbox = Spool(MboxFormat.Mboxrd, "\"john doe\"@example.org", Tricky, "Subject: second\r\n\r\nFrom here");
        var records = MboxRecords.Read(new MemoryStream(mbox)).ToList();

        Assert.Equal(2, records.Count);
        Assert.Equal("\"john doe\"@example.org", records[0].Sender); // from Return-Path: the From_ line has "john_doe"
        Assert.Equal("Received: from client.test\r\n\tby bridge.localhost (Bridge) with ESMTP id 1\r\n" + Tricky,
            Encoding.UTF8.GetString(records[0].Message.ToArray()));
        Assert.EndsWith("\r\n\r\nFrom here", Encoding.UTF8.GetString(records[1].Message.ToArray()), StringComparison.Ordinal);
        Assert.Equal(mbox.Length, records[1].End);
    }

    [Fact]
    public void Mboxo_loses_the_difference_between_a_quoted_From_and_a_From_the_message_had()
    {
        var mbox = Spool(MboxFormat.Mboxo, "a@example.org", "Subject: x\r\n\r\nFrom one\r\n>From two");
        var message = Encoding.UTF8.GetString(MboxRecords.Read(new MemoryStream(mbox), MboxFormat.Mboxo).Single().Message.ToArray());
        Assert.EndsWith("\r\n\r\nFrom one\r\nFrom two", message, StringComparison.Ordinal); // ">From two" came back as "From two"
    }

    [Fact]
    public void The_null_sender_comes_back_empty_and_drain_asks_for_8bitmime_and_smtputf8_where_needed()
    {
        var records = MboxRecords.Read(new MemoryStream(Spool(MboxFormat.Mboxrd, "", Tricky, "Subject: plain\r\n\r\nbody \u00e9"))).ToList();
        Assert.Equal("", records[0].Sender);
        Assert.Equal(new Dictionary<string, string> { ["BODY"] = "8BITMIME", ["SMTPUTF8"] = "" }, Bridge.Collection.SpoolCollector.MailParameters(records[0]));
        Assert.Equal(new Dictionary<string, string> { ["BODY"] = "8BITMIME" }, Bridge.Collection.SpoolCollector.MailParameters(records[1]));
    }

    [Theory]
    [InlineData("From a@x Tue", 0)]
    [InlineData("\nFrom a@x", 1)]
    [InlineData("\n\nFrom a", 2)]
    [InlineData("\n\n\nFrom", -1)] // three newlines are no record start a writer makes
    [InlineData("xFrom a", -1)]
    [InlineData(">From a", -1)]
    [InlineData("From", -1)]
    [InlineData("", -1)]
    [InlineData("\nfrom a", -1)]
    public void A_record_starts_with_a_from_line_right_there_or_after_one_or_two_newlines(string text, int expected) =>
        Assert.Equal(expected, MboxRecords.RecordStartAt(Encoding.ASCII.GetBytes(text)));
}
