using System.Text;
using Bridge.Delivery;

namespace Bridge.UnitTests.Delivery;

/// <summary>Pure logic: the Received field Bridge writes, and reading its queue id back (as `probe` does).</summary>
public class ReceivedHeaderTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 24, 19, 57, 21, TimeSpan.Zero);

    [Fact]
    public void The_field_has_the_documented_shape()
    {
        var field = Encoding.UTF8.GetString(ReceivedHeader.Build("mta.example", "127.0.0.1", "bridge.localhost", "ESMTP", "0B1C2D3E4F5A6B7C",
            ["george@example.com"], Now));
        Assert.Equal("Received: from mta.example ([127.0.0.1])\r\n\tby bridge.localhost (Bridge) with ESMTP id 0B1C2D3E4F5A6B7C\r\n" +
            "\tfor <george@example.com>; Tue, 24 Nov 2026 19:57:21 +0000\r\n", field);
    }

    [Theory]
    [InlineData("SMTP")]
    [InlineData("ESMTP")]
    [InlineData("LMTP")]
    public void The_queue_id_reads_back_from_a_delivered_message(string protocol)
    {
        var field = Encoding.UTF8.GetString(ReceivedHeader.Build("bad helo\r\nX: y", null, "bridge.localhost", protocol, "00AA11BB22CC33DD", ["a@x", "b@x"], Now));
        var message = field.Replace("\r\n", "\n", StringComparison.Ordinal) + "Subject: hi\n\nbody\n";

        Assert.True(ReceivedHeader.TryReadQueueId(message, "bridge.localhost", out var id));
        Assert.Equal("00AA11BB22CC33DD", id);
        Assert.DoesNotContain("\r\nX: y", field, StringComparison.Ordinal); // the HELO name cannot add a field
    }

    [Theory]
    [InlineData("other.host")]
    [InlineData("bridge")]
    public void Another_servers_field_is_not_bridges(string serverName)
    {
        var field = Encoding.UTF8.GetString(ReceivedHeader.Build("h", "::1", "bridge.localhost", "ESMTP", "00AA11BB22CC33DD", [], Now));
        Assert.False(ReceivedHeader.TryReadQueueId(field, serverName, out _));
        Assert.False(ReceivedHeader.TryReadQueueId("Received: from x by y with ESMTP id 1234\r\n", "bridge.localhost", out _));
    }
}
