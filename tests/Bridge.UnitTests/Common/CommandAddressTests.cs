using Bridge.Common;

namespace Bridge.UnitTests.Common;

/// <summary>What may go into a MAIL or RCPT command as it is (addresses read from spool files other users wrote are relayed too).</summary>
public class CommandAddressTests
{
    [Theory]
    [InlineData("alice@example.org")]
    [InlineData("\"john doe\"@example.org")]
    [InlineData("\"a\\\"b\"@example.org")]
    [InlineData("\"a\\\\b\"@example.org")]
    [InlineData("jörg@example.org")]
    [InlineData("")]
    public void Addresses_that_keep_to_the_syntax_are_safe(string address) => Assert.True(CommandAddress.IsSafe(address));

    [Theory]
    [InlineData("alice@example.org> SIZE=1")]
    [InlineData("a b@example.org")]
    [InlineData("alice@example.org\r\nRCPT TO:<bob@example.org")]
    [InlineData("\"\\\rRCPT TO:<bob@example.org>\"@x.test")] // a control character after a backslash (found by the attack)
    [InlineData("\"\\\u007f\"@x.test")]
    [InlineData("\"\\\u0085\"@x.test")]
    [InlineData("\"unterminated@x.test")]
    [InlineData("\"ends in a backslash\\")]
    [InlineData("a\u2028b@x.test")]
    public void Addresses_that_could_add_parameters_or_commands_are_not(string address) => Assert.False(CommandAddress.IsSafe(address));
}
