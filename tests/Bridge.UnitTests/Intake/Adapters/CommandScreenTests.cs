using System.Text;
using Bridge.Intake;
using Bridge.Intake.Adapters;

namespace Bridge.UnitTests.Intake.Adapters;

/// <summary>Pure logic, no peers: which MAIL/RCPT lines CommandScreen refuses, with which reply, and what it hands on.</summary>
public class CommandScreenTests
{
    private static CommandScreen.Verdict Screen(string line) => CommandScreen.Screen(Encoding.Latin1.GetBytes(line + "\r\n"), 25 << 20);

    [Theory]
    [InlineData("MAIL FROM:<a@b.c>")]
    [InlineData("MAIL FROM:<> SIZE=1000 BODY=8BITMIME SMTPUTF8")]
    [InlineData("mail from:<a@b.c> size=10 body=7bit")]
    [InlineData("MAIL FROM:<\"x > y\"@b.c> SIZE=5")]
    [InlineData("RCPT TO:<a@b.c>")]
    [InlineData("EHLO x SIZE=1 SIZE=2")]
    [InlineData("DATA")]
    [InlineData("MAIL FROM:<a@b.c SIZE=1 SIZE=2")] // no path end: SmtpServer's own syntax error
    public void Lines_it_has_nothing_against_pass_unchanged(string line) => Assert.Equal(default, Screen(line));

    [Theory]
    [InlineData("MAIL FROM:<> SIZE=1 SIZE=2", 501, "Duplicate MAIL parameter SIZE")]
    [InlineData("MAIL FROM:<a@b.c> SMTPUTF8 smtputf8", 501, "Duplicate MAIL parameter smtputf8")]
    [InlineData("MAIL FROM:<a@b.c> SIZE=abc", 501, "Bad SIZE parameter: 1 to 20 digits expected (RFC 1870)")]
    [InlineData("MAIL FROM:<a@b.c> SIZE=-1", 501, "Bad SIZE parameter: 1 to 20 digits expected (RFC 1870)")]
    [InlineData("MAIL FROM:<a@b.c> SIZE=", 501, "Bad value of parameter SIZE")]
    [InlineData("MAIL FROM:<a@b.c> SIZE=99999999999999999999", 552, "Message size exceeds fixed limit of 26214400 bytes")]
    [InlineData("MAIL FROM:<a@b.c> SIZE=26214401", 552, "Message size exceeds fixed limit of 26214400 bytes")]
    [InlineData("MAIL FROM:<a@b.c> BODY=FOO", 501, "Bad BODY parameter: 7BIT or 8BITMIME expected (RFC 6152)")]
    [InlineData("MAIL FROM:<a@b.c> BODY=BINARYMIME", 555, "Unsupported BODY=BINARYMIME (it needs CHUNKING, which is not offered)")]
    [InlineData("MAIL FROM:<a@b.c> RET=HDRS", 555, "Unsupported MAIL parameter RET")]
    [InlineData("MAIL FROM:<a@b.c> X=a=b", 501, "Bad value of parameter X")]
    [InlineData("RCPT TO:<a@b.c> NOTIFY=NEVER", 555, "Unsupported RCPT parameter NOTIFY")]
    [InlineData("RCPT TO:<\"x y\"@b.c> ORCPT=rfc822;a@b.c", 555, "Unsupported RCPT parameter ORCPT")]
    public void Each_bad_parameter_gets_its_rfc_reply(string line, int code, string text)
    {
        var verdict = Screen(line);
        Assert.Equal(code, verdict.Refusal?.Code);
        Assert.Equal(code == 552 ? "5.3.4" : "5.5.4", verdict.Refusal?.Enhanced);
        Assert.Equal(text, verdict.Refusal?.Text);
    }

    [Fact]
    public void A_refused_line_is_handed_on_without_its_parameters()
    {
        var verdict = Screen("MAIL FROM:<\"john doe\"@x.org> SIZE=1 SIZE=2");
        Assert.Equal("MAIL FROM:<\"john doe\"@x.org>\r\n", Encoding.Latin1.GetString(verdict.Replacement!));
    }

    [Fact]
    public void A_parameter_of_5000_bytes_is_refused_before_any_parser_sees_it()
    {
        var verdict = Screen("MAIL FROM:<a@b.c> X=" + new string('v', 5000));
        Assert.Equal(501, verdict.Refusal?.Code);
        Assert.Equal("MAIL FROM:<a@b.c>\r\n", Encoding.Latin1.GetString(verdict.Replacement!));
    }
}
