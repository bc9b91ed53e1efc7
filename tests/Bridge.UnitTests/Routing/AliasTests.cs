using Bridge.Common;
using Bridge.Routing;
using Microsoft.Extensions.Time.Testing;

namespace Bridge.UnitTests.Routing;

/// <summary>aliases(5) files read and expanded as Postfix reads them, on files in a temporary folder (no root).</summary>
public sealed class AliasTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bridge-aliases-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private sealed class Passwd(params string[] logins) : IPasswdDatabase
    {
        public (uint Uid, uint Gid)? Find(string login) =>
            logins.Contains(login) ? ((uint)(1000 + Array.IndexOf(logins, login)), 100u) : null;
    }

    private static RoutingTable Table(AliasTable aliases) =>
        new(["afp548.com"], [(["george", "gw"], null)], "+", new Passwd("ann", "bob", "carol", "root"), aliases);

    private AliasTable Aliases(string text, TimeProvider? time = null) =>
        new([Write("aliases", text)], ["afp548.com"], time);

    [Fact]
    public void The_standard_format_is_read_with_continuations_comments_quotes_and_includes()
    {
        var include = Write("staff.list", "# the staff\nann\n bob, carol\n");
        var path = Write("aliases", $"""
            # /etc/aliases
            postmaster: root
            staff: :include:{include}
            team: ann,
              "bob",
            	carol@afp548.com
            Mixed: george
            runner: "|/usr/bin/procmail -a x"
            """);
        var content = AliasFile.Read([path]);

        Assert.Empty(content.Problems);
        Assert.Equal(["postmaster", "staff", "team", "mixed", "runner"], content.Entries.Keys);
        Assert.Equal(["ann", "bob", "carol"], content.Entries["staff"].Targets.Select(t => t.Value));
        Assert.Equal($"{include}:3", content.Entries["staff"].Targets[1].Source);
        Assert.Equal(["ann", "bob", "carol@afp548.com"], content.Entries["team"].Targets.Select(t => t.Value));
        Assert.Equal($"{path}:4", content.Entries["team"].Source);
        Assert.Equal((AliasTargetKind.Command, "|/usr/bin/procmail -a x"), (content.Entries["runner"].Targets[0].Kind, content.Entries["runner"].Targets[0].Value));
        Assert.Contains(include, content.FilesRead);
    }

    [Fact]
    public void Broken_lines_duplicates_and_missing_includes_are_problems_with_file_and_line_and_the_rest_is_used()
    {
        var path = Write("aliases", "good: ann\nno colon here\ngood: bob\nempty:\nlost: :include:/nonexistent/list\n");
        var content = AliasFile.Read([path]);
        Assert.Equal(["ann"], content.Entries["good"].Targets.Select(t => t.Value));
        Assert.Contains(content.Problems, p => p.StartsWith($"{path}:2: not an alias", StringComparison.Ordinal));
        Assert.Contains(content.Problems, p => p.StartsWith($"{path}:3: alias good is defined again", StringComparison.Ordinal));
        Assert.Contains(content.Problems, p => p.StartsWith($"{path}:4: alias empty has no target", StringComparison.Ordinal));
        Assert.Contains(content.Problems, p => p.StartsWith($"{path}:5: :include:/nonexistent/list cannot be read", StringComparison.Ordinal));
    }

    [Fact]
    public void An_alias_reaches_each_user_once_through_nested_aliases_with_x_original_to_the_alias()
    {
        var table = Table(Aliases("all: staff, ann, george\nstaff: ann, bob\nroot: root, carol\n"));

        var all = table.Resolve("all", "afp548.com");
        Assert.True(all.IsAccepted, all.Refusal.ToString());
        Assert.Equal(["ann", "bob", "george"], all.Recipients.Select(r => r.User.ShortName));
        Assert.All(all.Recipients, r => Assert.Equal(("all@afp548.com", "all"), (r.Address, r.Alias)));
        Assert.Equal(["ann@afp548.com", "bob@afp548.com", "george@afp548.com"], all.Recipients.Select(r => r.StoreAddress));

        // A name that names itself is its user (Postfix: "root: root, backup").
        Assert.Equal(["root", "carol"], table.Resolve("root", "afp548.com").Recipients.Select(r => r.User.ShortName));
        // Tags: all+x is all.
        Assert.Equal(3, table.Resolve("all+x", "afp548.com").Recipients.Count);
    }

    [Theory]
    [InlineData("a: b\nb: a\n", "a", "554 5.4.6 <a@afp548.com>: alias a loops: a -> b -> a")]
    [InlineData("pipe: ann, \"|/bin/cat\"\n", "pipe", "550 5.3.5 <pipe@afp548.com>: alias pipe expands to |/bin/cat")]
    [InlineData("file: /tmp/mail.log\n", "file", "550 5.3.5 <file@afp548.com>: alias file expands to /tmp/mail.log")]
    [InlineData("away: someone@elsewhere.org\n", "away", "550 5.3.5 <away@afp548.com>: alias away expands to someone@elsewhere.org")]
    [InlineData("ghost: nobody-here\n", "ghost", "550 5.1.1 <ghost@afp548.com>: alias ghost (")]
    public void What_bridge_cannot_deliver_is_refused_at_rcpt_with_the_reason(string aliases, string name, string refusal)
    {
        var route = Table(Aliases(aliases)).Resolve(name, "afp548.com");
        Assert.False(route.IsAccepted);
        Assert.StartsWith(refusal, route.Refusal.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_chain_deeper_than_the_limit_is_a_loop()
    {
        var chain = string.Concat(Enumerable.Range(0, AliasTable.MaxDepth + 2).Select(i => $"a{i}: a{i + 1}\n"));
        var route = Table(Aliases(chain)).Resolve("a0", "afp548.com");
        Assert.StartsWith("554 5.4.6 <a0@afp548.com>: alias a0 goes deeper than 10 aliases", route.Refusal.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Targets_bridge_cannot_deliver_are_listed_at_load_with_file_and_line()
    {
        var table = Aliases("ok: ann\npipe: \"|/bin/cat\"\nfar: x@elsewhere.org, y@afp548.com\n");
        var problems = table.Problems;
        Assert.Equal(2, problems.Count);
        Assert.EndsWith("aliases:2: alias pipe: |/bin/cat is a command, which Bridge cannot deliver; mail to pipe is refused at RCPT", problems[0], StringComparison.Ordinal);
        Assert.EndsWith("aliases:3: alias far: x@elsewhere.org is a remote address, which Bridge cannot deliver; mail to far is refused at RCPT", problems[1], StringComparison.Ordinal);
    }

    [Fact]
    public void An_edited_file_is_read_again_without_a_restart()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var aliases = Aliases("team: ann\n", time);
        var table = Table(aliases);
        var reported = new List<string>();
        aliases.Report = reported.Add;
        Assert.Equal(["ann"], table.Resolve("team", "afp548.com").Recipients.Select(r => r.User.ShortName));

        Write("aliases", "team: ann, bob\nbroken line\n");
        File.SetLastWriteTimeUtc(Path.Combine(_dir, "aliases"), DateTime.UtcNow.AddSeconds(5));
        time.Advance(TimeSpan.FromSeconds(2));

        Assert.Equal(["ann", "bob"], table.Resolve("team", "afp548.com").Recipients.Select(r => r.User.ShortName));
        Assert.Single(reported, p => p.Contains(":2: not an alias", StringComparison.Ordinal));
    }

    [Fact]
    public void Without_alias_files_nothing_changes() =>
        Assert.Equal("george", new RoutingTable(["afp548.com"], [(["george"], null)], "+", null, new AliasTable([], ["afp548.com"]))
            .Resolve("george", "afp548.com").Recipient?.User.ShortName);
}
