using System.Buffers;
using System.Text;
using Bridge.Intake;

namespace Bridge.UnitTests.Intake;

public class HeaderSummaryReaderTests
{
    [Fact]
    public void Counts_received_and_collects_delivered_to_from_the_header_section_only()
    {
        var message = "Received: a\r\n\tfolded\r\nreceived: b\r\nDelivered-To: <George@AFP548.com>\r\nDelivered-To:\r\n x@y\r\n\r\nReceived: in body\r\nDelivered-To: body@x\r\n";
        var summary = HeaderSummaryReader.Read(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(message)));
        Assert.Equal(2, summary.ReceivedCount);
        Assert.Equal(["George@AFP548.com", "x@y"], summary.DeliveredTo);
    }

    [Fact]
    public void A_header_folded_over_a_megabyte_is_read_without_keeping_it()
    {
        // Concatenating every continuation line took 8-54 s for 1 MB: the reader keeps at most MaxValue characters of a
        // value (no address is longer) and skips the rest of the field without copying, so its work is linear. Checked
        // by what it keeps, not by a clock (a timed unit test fails on a busy machine, not on a slow reader).
        var folded = new StringBuilder("Delivered-To: start\r\n");
        while (folded.Length < 1_100_000)
        {
            folded.Append(" x\r\n");
        }
        folded.Append("X-Other: y\r\n");
        while (folded.Length < 2_200_000)
        {
            folded.Append(" z\r\n");
        }
        var message = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(folded + "Received: last\r\n\r\nbody\r\n"));

        var summary = HeaderSummaryReader.Read(message);

        Assert.Equal(1, summary.ReceivedCount);
        var deliveredTo = Assert.Single(summary.DeliveredTo);
        Assert.StartsWith("start x x x", deliveredTo, StringComparison.Ordinal);
        Assert.InRange(deliveredTo.Length, HeaderSummaryReader.MaxValue - 16, HeaderSummaryReader.MaxValue + 16);
    }
}
