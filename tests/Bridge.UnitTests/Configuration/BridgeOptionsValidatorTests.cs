using Bridge.Common;
using Bridge.Configuration;
using Bridge.Hosting;
using Bridge.Routing;
using Microsoft.Extensions.Configuration;

namespace Bridge.UnitTests.Configuration;

public class BridgeOptionsValidatorTests
{
    private static IReadOnlyList<string> Errors(params (string Key, string Value)[] settings)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)))
            .Build();
        return SettingsSnapshot.Load(configuration, new SystemPasswdDatabase()).Errors;
    }

    [Fact]
    public void Defaults_are_valid() => Assert.Empty(Errors());

    [Theory]
    [InlineData("Bridge:Listen:Port", "70000", "Bridge:Listen:Port")]
    [InlineData("Bridge:Listen:Address", "localhost:25", "Bridge:Listen:Address")]
    [InlineData("Bridge:Mode", "Relay", "Bridge:Mode")]
    [InlineData("Bridge:Spool:Directory", "var/mail", "Bridge:Spool:Directory")]
    [InlineData("Bridge:Spool:MaxMailboxBytes", "-1", "Bridge:Spool:MaxMailboxBytes")]
    [InlineData("Bridge:Users:0:ShortNames:0", "../root", "Bridge:Users[0]:ShortNames[0]")]
    [InlineData("Bridge:Spool:Directroy", "/x", "Directroy")]
    [InlineData("Bridge:RecipientDelimiter", "a", "Bridge:RecipientDelimiter")]
    public void A_bad_value_is_reported_with_its_key(string key, string value, string named)
    {
        var errors = Errors((key, value));
        Assert.Contains(errors, e => e.Contains(named, StringComparison.Ordinal));
    }

    [Fact]
    public void The_server_name_may_not_be_the_host_name() =>
        Assert.Contains(Errors(("Bridge:ServerName", System.Net.Dns.GetHostName())), e => e.Contains("loops back to myself", StringComparison.Ordinal));

    [Fact]
    public void A_short_name_may_belong_to_one_user_only() =>
        Assert.Contains(Errors(("Bridge:Users:0:ShortNames:0", "george"), ("Bridge:Users:1:ShortNames:0", "bob"), ("Bridge:Users:1:ShortNames:1", "George")),
            e => e.Contains("Bridge:Users[1]:ShortNames[1]", StringComparison.Ordinal) && e.Contains("Bridge:Users[0]", StringComparison.Ordinal));

    [Fact]
    public void Legacy_mode_for_anyone_needs_the_store_host() =>
        Assert.Contains(Errors(("Bridge:Users:0:ShortNames:0", "george"), ("Bridge:Users:0:Mode", "Legacy")),
            e => e.Contains("Bridge:Legacy:Host", StringComparison.Ordinal));

    [Theory]
    [InlineData("Bridge:Retry:Budget", "00:11:00", "Bridge:Retry:Budget")]
    [InlineData("Bridge:Retry:BreakAfterFailures", "1", "Bridge:Retry:BreakAfterFailures")]
    [InlineData("Bridge:Legacy:Protocol", "Pop3", "Bridge:Legacy:Protocol")]
    [InlineData("Bridge:Legacy:Username", "u", "Bridge:Legacy:Password")]
    public void Bad_store_and_retry_settings_are_named(string key, string value, string named) =>
        Assert.Contains(Errors((key, value)), e => e.Contains(named, StringComparison.Ordinal));

    [Fact]
    public void User_mode_binds()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection([
            new("Bridge:Users:0:ShortNames:0", "george"), new("Bridge:Users:0:Mode", "Legacy"), new("Bridge:Legacy:Host", "store.example")]).Build();
        var (snapshot, errors) = SettingsSnapshot.Load(configuration, new SystemPasswdDatabase());
        Assert.Empty(errors);
        Assert.Equal(BridgeMode.Legacy, snapshot!.Options.Users[0].Mode);
    }
}
