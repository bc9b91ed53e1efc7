using Bridge.Routing;

namespace Bridge.UnitTests.Routing;

/// <summary>Pure logic: an envelope address leaves Bridge in RFC 5321 syntax.</summary>
public class EnvelopeAddressTests
{
    [Theory]
    [InlineData("george", "afp548.com", "george@afp548.com")]
    [InlineData("first.last+tag", "x.org", "first.last+tag@x.org")]
    [InlineData("john doe", "x.org", "\"john doe\"@x.org")]
    [InlineData("a\"b\\c", "x.org", "\"a\\\"b\\\\c\"@x.org")]
    [InlineData(".leading", "x.org", "\".leading\"@x.org")]
    [InlineData("two..dots", "x.org", "\"two..dots\"@x.org")]
    [InlineData("caf\u00e9", "x.org", "caf\u00e9@x.org")] // SMTPUTF8 local part: a Dot-string
    [InlineData("", "", "")]
    public void Formats_a_local_part_as_a_dot_string_or_a_quoted_string(string localPart, string domain, string expected)
    {
        Assert.True(EnvelopeAddress.TryFormat(localPart, domain, out var address));
        Assert.Equal(expected, address);
    }

    [Theory]
    [InlineData("a\tb")]
    [InlineData("a\rb")]
    [InlineData("a\u007fb")]
    public void A_control_character_cannot_be_written(string localPart) => Assert.False(EnvelopeAddress.TryFormat(localPart, "x.org", out _));

    [Theory]
    [InlineData("george", "george")]
    [InlineData("\"john doe\"", "john doe")]
    [InlineData("\"a\\\"b\\\\c\"", "a\"b\\c")] // "a\"b\\c" -> a"b\c
    [InlineData("\"ge\\orge\"", "george")]
    [InlineData("\"\"", "")]
    [InlineData("\"unterminated", "\"unterminated")]
    [InlineData("half\"quoted\"", "half\"quoted\"")]
    public void Unquote_reads_a_local_part_as_typed_into_the_form_rcpt_routes(string typed, string expected) =>
        Assert.Equal(expected, EnvelopeAddress.Unquote(typed));

    [Theory]
    [InlineData("\"john doe\"@x.org", "john doe@x.org")]
    [InlineData("\"a@b\"@x.org", "a@b@x.org")]
    [InlineData("plain@x.org", "plain@x.org")]
    [InlineData("no-at-sign", "no-at-sign")]
    public void UnquoteAddress_unquotes_only_the_local_part(string typed, string expected) =>
        Assert.Equal(expected, EnvelopeAddress.UnquoteAddress(typed));

    [Theory]
    [InlineData("john doe")]
    [InlineData("a\"b\\c")]
    [InlineData("george")]
    public void Unquote_undoes_format(string localPart)
    {
        Assert.True(EnvelopeAddress.TryFormat(localPart, "x.org", out var address));
        Assert.Equal(localPart + "@x.org", EnvelopeAddress.UnquoteAddress(address));
    }
}
