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
}
