using System.Buffers;
using System.Text;
using Bridge.Intake;

namespace Bridge.Tests.Intake;

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
}
