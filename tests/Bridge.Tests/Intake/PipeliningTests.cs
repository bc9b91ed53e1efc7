// Job: the replies to a pipelined group (RFC 2920) leave Bridge together, when it would wait for its client, as
// Postfix's smtpd sends them: counted on the wire with the kernel's own count of data segments received
// (TCP_INFO tcpi_data_segs_in), so a reply sent on its own shows as a segment of its own.
// Failure: a count other than one segment for the group, or a missing reply, fails the test.
using System.Net.Sockets;
using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Tests.Intake;

public class PipeliningTests
{
    private const string Alice = "alice@" + SpoolScenario.Domain;

    [Fact]
    public async Task The_replies_to_MAIL_RCPT_DATA_sent_together_come_back_in_one_segment_and_the_message_is_delivered()
    {
        await using var s = await SpoolScenario.StartAsync();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await client.ConnectAsync(System.Net.IPAddress.Loopback, s.Port);
        Assert.StartsWith("220 ", await ReadUntilAsync(client, "220 "), StringComparison.Ordinal);
        await client.SendAsync("EHLO client.test\r\n"u8.ToArray());
        Assert.Contains("250 ", await ReadUntilAsync(client, "250 "), StringComparison.Ordinal);

        var before = DataSegmentsIn(client);
        await client.SendAsync(Encoding.ASCII.GetBytes($"MAIL FROM:<sender@example.org>\r\nRCPT TO:<{Alice}>\r\nDATA\r\n"));
        var replies = await ReadUntilAsync(client, "354 ");
        var segments = DataSegmentsIn(client) - before;

        Assert.Matches("^250 2\\.[0-9.]+ [^\r]*\r\n250 2\\.[0-9.]+ [^\r]*\r\n354 ", replies);
        Assert.Equal(1u, segments);

        await client.SendAsync("Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n"u8.ToArray());
        var end = await ReadUntilAsync(client, "221 ");
        Assert.Matches("^250 2\\.0\\.0 [^\r]*\r\n221 2\\.0\\.0 ", end); // the message's 250, then QUIT's 221 before the close
        Assert.Contains("Subject: pipelined", await File.ReadAllTextAsync(s.AliceMailbox), StringComparison.Ordinal);
    }

    /// <summary>Reads until a line starting with <paramref name="last"/> has arrived whole; everything read.</summary>
    private static async Task<string> ReadUntilAsync(Socket client, string last)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var text = new StringBuilder();
        var buffer = new byte[4096];
        while (true)
        {
            var all = text.ToString();
            var complete = all[..(all.LastIndexOf('\n') + 1)];
            if (complete.Split("\r\n").Any(l => l.StartsWith(last, StringComparison.Ordinal)))
            {
                return all;
            }
            var n = await client.ReceiveAsync(buffer, timeout.Token);
            if (n == 0)
            {
                return all;
            }
            text.Append(Encoding.Latin1.GetString(buffer, 0, n));
        }
    }

    /// <summary>struct tcp_info's tcpi_data_segs_in (Linux 4.6+): segments with data this socket has received.</summary>
    private static uint DataSegmentsIn(Socket client)
    {
        var info = new byte[232];
        var length = client.GetRawSocketOption(6 /* IPPROTO_TCP */, 11 /* TCP_INFO */, info);
        Assert.True(length >= 156, $"TCP_INFO is {length} bytes here: no tcpi_data_segs_in");
        return BitConverter.ToUInt32(info, 152);
    }
}
