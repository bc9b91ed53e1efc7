using Bridge.Common;

namespace Bridge.UnitTests.Common;

/// <summary>Pure logic: RFC 3461 xtext, and what a recipient's NOTIFY and ORCPT mean.</summary>
public class XtextTests
{
    [Theory]
    [InlineData("user@example.org", "user@example.org")]
    [InlineData("a+2Bb@example.org", "a+b@example.org")]
    [InlineData("x+3Dy", "x=y")]
    [InlineData("caf+C3+A9", "caf\u00e9")]
    public void Decoding_undoes_the_hex_escapes(string xtext, string text)
    {
        Assert.True(Xtext.IsValid(xtext));
        Assert.Equal(text, Xtext.Decode(xtext));
        Assert.Equal(xtext, Xtext.Encode(text));
    }

    [Theory]
    [InlineData("a+zz")]
    [InlineData("a+2")]
    [InlineData("a=b")]
    [InlineData("a b")]
    [InlineData("a+2b")] // lower-case hex is not xtext
    public void Anything_else_is_not_xtext(string text) => Assert.False(Xtext.IsValid(text));

    private static RoutedRecipient Recipient(string? notify = null, string? orcpt = null) =>
        new("rcpt@example.org", new LocalUser("bob", 1000, 100, null), "bob@example.org") { Notify = notify, Orcpt = orcpt };

    [Fact]
    public void Without_notify_only_a_failure_is_notified_and_never_means_none()
    {
        Assert.True(Recipient().Wants("FAILURE"));
        Assert.False(Recipient().Wants("SUCCESS"));
        Assert.False(Recipient("NEVER").Wants("FAILURE"));
        Assert.True(Recipient("SUCCESS,FAILURE").Wants("SUCCESS"));
        Assert.False(Recipient("SUCCESS").Wants("FAILURE"));
    }

    [Fact]
    public void The_original_recipient_is_orcpts_rfc822_address_else_the_rcpt_address()
    {
        Assert.Equal("info+2Bx@example.org".Replace("+2B", "+", StringComparison.Ordinal), Recipient(orcpt: "rfc822;info+2Bx@example.org").OriginalRecipient);
        Assert.Equal("rcpt@example.org", Recipient(orcpt: "x400;whatever").OriginalRecipient);
        Assert.Equal("rcpt@example.org", Recipient().OriginalRecipient);
    }
}
