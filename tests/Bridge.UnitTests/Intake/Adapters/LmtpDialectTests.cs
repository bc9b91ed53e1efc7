using System.Text;
using Bridge.Intake;
using Bridge.Intake.Adapters;

namespace Bridge.UnitTests.Intake.Adapters;

/// <summary>Pure logic: the command lines SmtpServer sees on an LMTP socket.</summary>
public class LmtpDialectTests
{
    private static (string? Line, string? Reply) Translate(string line)
    {
        var (translated, reply) = LmtpDialect.Translate(Encoding.ASCII.GetBytes(line));
        return (translated is null ? null : Encoding.ASCII.GetString(translated), reply);
    }

    [Theory]
    [InlineData("LHLO mta.example\r\n", "EHLO mta.example\r\n")]
    [InlineData("lhlo mta.example\r\n", "EHLO mta.example\r\n")]
    [InlineData("LHLO\r\n", "EHLO\r\n")]
    public void Lhlo_reaches_smtpserver_as_ehlo_with_its_argument(string line, string expected) =>
        Assert.Equal((expected, null), Translate(line));

    [Theory]
    [InlineData("EHLO mta.example\r\n")]
    [InlineData("helo mta.example\r\n")]
    [InlineData("EHLO\r\n")]
    public void Helo_and_ehlo_become_a_noop_whose_reply_is_the_refusal(string line) =>
        Assert.Equal(("NOOP\r\n", Replies.UseLhlo), Translate(line));

    [Theory]
    [InlineData("MAIL FROM:<a@b.c>\r\n")]
    [InlineData("LHLOX y\r\n")]
    [InlineData("EHLOWORLD\r\n")]
    [InlineData("RCPT TO:<LHLO@b.c>\r\n")]
    public void Every_other_line_passes_unchanged(string line) => Assert.Equal((null, null), Translate(line));

    [Fact]
    public void The_refusal_is_a_permanent_syntax_reply() => Assert.StartsWith("500 5.5.1 ", Replies.UseLhlo, StringComparison.Ordinal);
}
