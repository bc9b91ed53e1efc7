using System.Net;
using Bridge.Intake;

namespace Bridge.UnitTests.Intake;

public class ClientAllowListTests
{
    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("127.8.9.10", true)]
    [InlineData("::1", true)]
    [InlineData("::ffff:127.0.0.1", true)]
    [InlineData("10.0.0.1", false)]
    [InlineData("::2", false)]
    public void The_default_is_loopback_only(string address, bool allowed) =>
        Assert.Equal(allowed, new ClientAllowList([]).Allows(IPAddress.Parse(address)));

    [Fact]
    public void Configured_networks_replace_the_default()
    {
        var list = new ClientAllowList(["10.1.0.0/16", "2001:db8::/32"]);
        Assert.True(list.Allows(IPAddress.Parse("10.1.2.3")));
        Assert.True(list.Allows(IPAddress.Parse("::ffff:10.1.2.3")));
        Assert.True(list.Allows(IPAddress.Parse("2001:db8::1")));
        Assert.False(list.Allows(IPAddress.Parse("127.0.0.1")));
    }
}
