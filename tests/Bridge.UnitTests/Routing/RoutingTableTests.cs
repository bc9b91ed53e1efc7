using Bridge.Common;
using Bridge.Routing;

namespace Bridge.UnitTests.Routing;

public class RoutingTableTests
{
    private sealed class Passwd(params string[] logins) : IPasswdDatabase
    {
        public (uint Uid, uint Gid)? Find(string login) =>
            logins.Contains(login) ? ((uint)(1000 + Array.IndexOf(logins, login)), 100u) : null;
    }

    private static RoutingTable Table(IPasswdDatabase? passwd = null) => new(
        ["afp548.com"],
        [(["george", "george@afp548.com", "gw"], null), (["ann", "annie"], BridgeMode.Legacy)],
        "+",
        passwd);

    [Theory]
    [InlineData("george", "afp548.com")]
    [InlineData("George", "AFP548.COM")]
    [InlineData("gw", "afp548.com")]
    [InlineData("gw", "localhost")]
    [InlineData("george+lists", "afp548.com")]
    [InlineData("gw+x+y", "afp548.com.")]
    public void Every_short_name_resolves_to_the_first(string local, string domain)
    {
        var result = Table().Resolve(local, domain);
        Assert.True(result.IsAccepted, result.Refusal.ToString());
        Assert.Equal("george", result.Recipient!.User.ShortName);
        Assert.Equal("george@afp548.com", result.Recipient.DeliveredTo);
        Assert.Equal($"{local}@{domain}", result.Recipient.Address);
    }

    [Fact]
    public void Per_user_mode_travels_with_the_user()
    {
        var result = Table().Resolve("annie", "afp548.com");
        Assert.Equal("ann", result.Recipient!.User.ShortName);
        Assert.Equal(BridgeMode.Legacy, result.Recipient.User.ModeOverride);
    }

    [Theory]
    [InlineData("nobody")]
    [InlineData("../etc/passwd")]
    [InlineData(".george")]
    [InlineData("george/x")]
    public void Unknown_or_unsafe_local_parts_are_refused_550_5_1_1(string local)
    {
        var result = Table().Resolve(local, "afp548.com");
        Assert.False(result.IsAccepted);
        Assert.Equal(550, result.Refusal.Code);
        Assert.Equal("5.1.1", result.Refusal.Enhanced);
    }

    [Fact]
    public void Foreign_domains_are_refused_554_5_7_1()
    {
        var result = Table().Resolve("george", "gmail.com");
        Assert.Equal((554, "5.7.1"), (result.Refusal.Code, result.Refusal.Enhanced));
    }

    [Fact]
    public void System_accounts_resolve_only_when_enabled_and_safe()
    {
        Assert.Equal((uint?)1000, Table(new Passwd("daemonuser")).Resolve("daemonuser", "localhost").Recipient?.User.Uid);
        Assert.False(Table().Resolve("daemonuser", "localhost").IsAccepted);
        Assert.False(Table(new Passwd("Bad.Name", "..")).Resolve("..", "localhost").IsAccepted);
    }

    [Fact]
    public void Configured_user_takes_uid_from_passwd_when_the_first_short_name_is_a_login()
    {
        var result = Table(new Passwd("george")).Resolve("gw", "afp548.com");
        Assert.Equal((uint?)1000, result.Recipient!.User.Uid);
    }

    [Theory]
    [InlineData("george", true)]
    [InlineData("a.b-c_d", true)]
    [InlineData("..", false)]
    [InlineData(".hidden", false)]
    [InlineData("Upper", false)]
    [InlineData("a/b", false)]
    [InlineData("", false)]
    [InlineData("george@afp548.com", false)]
    public void Safe_file_names(string name, bool safe) => Assert.Equal(safe, ShortName.IsSafeFileName(name));

    [Fact]
    public void Without_blocking_only_answers_what_needs_no_passwd_lookup()
    {
        var passwd = new CountingPasswd("daemonuser");
        var table = Table(passwd);
        var atStart = passwd.Lookups; // the configured users' first short names
        Assert.Equal("george", table.ResolveWithoutBlocking("gw", "afp548.com")!.Recipient!.User.ShortName); // configured
        Assert.Equal("5.7.1", table.ResolveWithoutBlocking("daemonuser", "example.org")!.Refusal.Enhanced); // foreign
        Assert.Null(table.ResolveWithoutBlocking("daemonuser", "localhost")); // would ask NSS
        Assert.Null(table.ResolveWithoutBlocking("nobody-here", "localhost"));
        Assert.Equal(atStart, passwd.Lookups);
        Assert.Equal("5.1.1", Table().ResolveWithoutBlocking("nobody-here", "localhost")!.Refusal.Enhanced); // no passwd at all
    }

    [Fact]
    public void Passwd_cache_keeps_found_accounts_for_its_ttl_and_never_unknown_ones()
    {
        var passwd = new CountingPasswd("daemonuser");
        var clock = new ManualClock();
        var table = Table(new PasswdCache(passwd, clock));
        var atStart = passwd.Lookups;

        Assert.Equal((uint?)1000, table.Resolve("daemonuser", "localhost").Recipient?.User.Uid);
        Assert.Equal((uint?)1000, table.ResolveWithoutBlocking("daemonuser", "localhost")?.Recipient?.User.Uid);
        Assert.Equal((uint?)1000, table.Resolve("daemonuser+tag", "localhost").Recipient?.User.Uid);
        Assert.Equal(atStart + 1, passwd.Lookups);

        Assert.False(table.Resolve("newuser", "localhost").IsAccepted);
        passwd.Add("newuser"); // created a moment later: the next RCPT must see it
        Assert.True(table.Resolve("newuser", "localhost").IsAccepted);

        clock.Now += PasswdCache.Ttl;
        Assert.Null(table.ResolveWithoutBlocking("daemonuser", "localhost")); // expired: asked again
        passwd.Remove("daemonuser");
        Assert.False(table.Resolve("daemonuser", "localhost").IsAccepted);
        Assert.Null(table.ResolveWithoutBlocking("daemonuser", "localhost"));
    }

    private sealed class CountingPasswd(params string[] logins) : IPasswdDatabase
    {
        private readonly List<string> _logins = [.. logins];

        public int Lookups { get; private set; }

        public void Add(string login) => _logins.Add(login);

        public void Remove(string login) => _logins.Remove(login);

        public (uint Uid, uint Gid)? Find(string login)
        {
            Lookups++;
            return _logins.Contains(login) ? ((uint)(1000 + _logins.IndexOf(login)), 100u) : null;
        }
    }

    private sealed class ManualClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 11, 24, 12, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;
    }
}
