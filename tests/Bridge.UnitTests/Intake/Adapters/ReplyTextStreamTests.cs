using System.Text;
using Bridge.Intake;
using Bridge.Intake.Adapters;

namespace Bridge.UnitTests.Intake.Adapters;

public class ReplyTextStreamTests
{
    private static string Clean(string chunk) => Encoding.Latin1.GetString(ReplyTextStream.Clean(Encoding.Latin1.GetBytes(chunk)).Span);

    [Theory]
    [InlineData("550 5.1.1 <x@y>: User unknown, 99 retry(ies) remaining.\r\n", "550 5.1.1 <x@y>: User unknown\r\n")]
    [InlineData("250 Ok\r\n", "250 2.0.0 Ok\r\n")]
    [InlineData("221 Timeout while waiting for input.\r\n", "421 4.4.2 Timeout while waiting for input\r\n")]
    [InlineData("503 bad sequence of commands, 4 retry(ies) remaining.\r\n", "503 5.5.1 Bad sequence of commands\r\n")]
    [InlineData("501 expected MAIL/RCPT, 3 retry(ies) remaining.\r\n", "503 5.5.1 Bad sequence of commands, expected MAIL/RCPT\r\n")]
    [InlineData("452 4.5.3 Too many recipients, 0 retry(ies) remaining.\r\n", "452 4.5.3 Too many recipients\r\n421 4.7.0 Too many errors, closing connection\r\n")]
    [InlineData("250-bridge.localhost\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n", "250-bridge.localhost\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n")]
    [InlineData("250 2.0.0 Ok: queued as X\r\n", "250 2.0.0 Ok: queued as X\r\n")]
    public void Makes_library_replies_precise(string written, string sent) => Assert.Equal(sent, Clean(written));

    [Fact]
    public async Task Holds_replies_until_the_session_waits_then_sends_them_in_one_write()
    {
        var socket = new CountingStream();
        var opened = new List<bool>();
        var replies = new ReplyTextStream(socket, opened.Add);

        await replies.WriteAsync("250 Ok\r\n"u8.ToArray());
        await replies.FlushAsync(); // SmtpServer flushes after every reply: nothing leaves yet
        await replies.WriteAsync("250 Ok\r\n"u8.ToArray());
        await replies.WriteAsync("354 end with <CRLF>.<CRLF>\r\n"u8.ToArray());
        Assert.Equal(0, socket.Writes);
        Assert.Equal([false, false, true], opened); // the input side still learns at once that message bytes follow

        await replies.SendPendingAsync(); // the input side is about to wait for the client
        Assert.Equal(1, socket.Writes);
        Assert.Equal("250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n354 end with <CRLF>.<CRLF>\r\n", Encoding.Latin1.GetString(socket.ToArray()));

        await replies.SendPendingAsync(); // nothing held: nothing written
        Assert.Equal(1, socket.Writes);
    }

    [Fact]
    public async Task Sends_at_once_beyond_the_hold_limit_and_what_is_left_at_the_end()
    {
        var socket = new CountingStream();
        var replies = new ReplyTextStream(socket, _ => { });
        var line = Encoding.Latin1.GetBytes("250 2.1.5 Ok\r\n");
        var lines = 0;
        while (socket.Writes == 0)
        {
            await replies.WriteAsync(line);
            lines++;
        }
        Assert.Equal((ReplyTextStream.HoldLimit + line.Length - 1) / line.Length, lines);
        Assert.Equal(0, replies.Held);

        replies.Write(Encoding.Latin1.GetBytes("221 bye\r\n"), 0, 9);
        Assert.Equal(1, socket.Writes);
        replies.SendPending(); // the session ends: its last reply goes before the socket closes
        Assert.Equal(2, socket.Writes);
        Assert.EndsWith("221 2.0.0 Bye\r\n", Encoding.Latin1.GetString(socket.ToArray()), StringComparison.Ordinal);
    }

    private sealed class CountingStream : MemoryStream
    {
        public int Writes { get; private set; }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Writes++;
            base.Write(buffer.ToArray(), 0, buffer.Length);
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            Writes++;
            base.Write(buffer, offset, count);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Writes++;
            base.Write(buffer.ToArray(), 0, buffer.Length);
            return ValueTask.CompletedTask;
        }
    }
}
