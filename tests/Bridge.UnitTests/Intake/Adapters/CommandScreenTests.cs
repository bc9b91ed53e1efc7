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
    public void Lines_it_has_nothing_against_pass_unchanged(string line) => AssertUnchanged(Screen(line));

    private static void AssertUnchanged(CommandScreen.Verdict verdict)
    {
        Assert.Null(verdict.Replacement);
        Assert.Null(verdict.Refusal);
    }

    [Theory]
    [InlineData("MAIL FROM:<\xff\xfe@c.d>", false, "553 5.1.7 Bad sender address syntax: 8-bit characters need SMTPUTF8 (RFC 6531)")]
    [InlineData("MAIL FROM:<j\xc3\xb6rg@c.d>", false, "553 5.1.7 Bad sender address syntax: 8-bit characters need SMTPUTF8 (RFC 6531)")]
    [InlineData("MAIL FROM:<\xff\xfe@c.d> SMTPUTF8", false, "553 5.1.7 Bad sender address syntax: it is not valid UTF-8 (RFC 6531)")]
    [InlineData("RCPT TO:<\xc3\xb6@c.d>", false, "553 5.1.3 Bad recipient address syntax: 8-bit characters need SMTPUTF8 (RFC 6531)")]
    [InlineData("RCPT TO:<\xc3@c.d>", true, "553 5.1.3 Bad recipient address syntax: it is not valid UTF-8 (RFC 6531)")]
    public void An_envelope_address_that_is_not_ascii_or_with_smtputf8_not_utf8_is_refused_and_never_handed_on(string escaped, bool utf8Transaction, string reply)
    {
        var bytes = Unescape(escaped);
        var verdict = CommandScreen.Screen(bytes, 25 << 20, utf8Transaction);
        Assert.Equal(reply, verdict.Refusal?.ToString());
        Assert.True(System.Text.Ascii.IsValid(verdict.Replacement), "the line SmtpServer gets holds none of the bytes");
    }

    [Theory]
    [InlineData("MAIL FROM:<j\xc3\xb6rg@c.d> SMTPUTF8", false)]
    [InlineData("RCPT TO:<j\xc3\xb6rg@c.d>", true)]
    public void Utf8_addresses_pass_with_smtputf8(string escaped, bool utf8Transaction)
    {
        var verdict = CommandScreen.Screen(Unescape(escaped), 25 << 20, utf8Transaction);
        Assert.Null(verdict.Refusal);
    }

    [Fact]
    public void A_mail_line_says_whether_its_transaction_may_use_utf8()
    {
        Assert.True(Screen("MAIL FROM:<a@b.c> SMTPUTF8").Smtputf8);
        Assert.False(Screen("MAIL FROM:<a@b.c>").Smtputf8);
        Assert.Null(Screen("RCPT TO:<a@b.c>").Smtputf8);
    }

    /// <summary>The line's characters (U+0000-U+00FF, as the \x escapes write them) as bytes, with CRLF.</summary>
    private static byte[] Unescape(string line) => Encoding.Latin1.GetBytes(line + "\r\n");

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
    [InlineData("MAIL FROM:<a@b.c> RET=ALL", 501, "Bad RET parameter: FULL or HDRS expected (RFC 3461)")]
    [InlineData("MAIL FROM:<a@b.c> ENVID=a+zz", 501, "Bad ENVID parameter: up to 100 characters of xtext expected (RFC 3461)")]
    [InlineData("MAIL FROM:<a@b.c> X=a=b", 501, "Bad value of parameter X")]
    [InlineData("MAIL FROM:<a@b.c> XFOO", 555, "Unsupported MAIL parameter XFOO")]
    [InlineData("RCPT TO:<a@b.c> NOTIFY=NEVER,DELAY", 501, "Bad NOTIFY parameter: NEVER, or SUCCESS, FAILURE, DELAY separated by commas (RFC 3461)")]
    [InlineData("RCPT TO:<a@b.c> NOTIFY=SUCCESS,SUCCESS", 501, "Bad NOTIFY parameter: NEVER, or SUCCESS, FAILURE, DELAY separated by commas (RFC 3461)")]
    [InlineData("RCPT TO:<\"x y\"@b.c> ORCPT=a@b.c", 501, "Bad ORCPT parameter: addr-type;xtext expected, e.g. rfc822;user@example.org (RFC 3461)")]
    [InlineData("RCPT TO:<a@b.c> XFOO=1", 555, "Unsupported RCPT parameter XFOO")]
    public void Each_bad_parameter_gets_its_rfc_reply(string line, int code, string text)
    {
        var verdict = Screen(line);
        Assert.Equal(code, verdict.Refusal?.Code);
        Assert.Equal(code == 552 ? "5.3.4" : "5.5.4", verdict.Refusal?.Enhanced);
        Assert.Equal(text, verdict.Refusal?.Text);
    }

    [Theory]
    [InlineData("MAIL FROM:<a@b.c> RET=HDRS ENVID=QQ+2B314")]
    [InlineData("mail from:<> ret=full")]
    public void Dsn_mail_parameters_pass_to_smtpserver_which_keeps_them(string line) => AssertUnchanged(Screen(line));

    [Fact]
    public void Dsn_rcpt_parameters_are_taken_out_for_recipientfilter_since_smtpserver_drops_them()
    {
        var verdict = Screen("RCPT TO:<\"x y\"@b.c> notify=success,failure ORCPT=rfc822;x+20y@b.c");
        Assert.Null(verdict.Refusal);
        Assert.Equal("RCPT TO:<\"x y\"@b.c>\r\n", Encoding.Latin1.GetString(verdict.Replacement!));
        Assert.Equal("SUCCESS,FAILURE", verdict.RcptParameters!["NOTIFY"]);
        Assert.Equal("rfc822;x+20y@b.c", verdict.RcptParameters["ORCPT"]);
        Assert.Equal("NEVER", Screen("RCPT TO:<a@b.c> NOTIFY=never").RcptParameters!["NOTIFY"]);
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
