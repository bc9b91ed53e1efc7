using Bridge.Delivery.Smtp;

namespace Bridge.UnitTests.Delivery.Smtp;

/// <summary>Pure logic: a store's reply text becomes printable ASCII before any client sees it.</summary>
public class SmtpReplyTextTests
{
    [Theory]
    [InlineData("Ok", "Ok")]
    [InlineData("Bo\u00eete ferm\u00e9e", "Boite fermee")]
    [InlineData("bad\u0000\u0007 user", "bad?? user")]
    [InlineData("\ufffd", "?")]
    [InlineData("\u4e2d", "?")]
    public void Reply_text_is_clean_ascii(string text, string expected) => Assert.Equal(expected, SmtpReply.CleanText(text));

    [Fact]
    public void A_reply_is_parsed_with_its_codes_and_clean_text()
    {
        var status = SmtpReply.Parse(["550-5.1.1 first\u0000", "550 5.1.1 second"]);
        Assert.Equal((550, "5.1.1", "first?; second"), (status.Code, status.Enhanced, status.Text));
        Assert.False(SmtpReply.IsFinal(SmtpReply.Parse(["354 go on"])));
    }
}
