using Bridge.Common;
using Bridge.Routing;

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

    private AliasTable Aliases(string text, AliasLimits? limits = null) =>
        new([Write("aliases", text)], ["afp548.com"], limits);

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
        var staff = AliasFileContent.Leaves(content.Entries["staff"].Targets).ToList();
        Assert.Equal(["ann", "bob", "carol"], staff.Select(t => t.Value));
        Assert.Equal($"{include}:3", staff[1].Source);
        Assert.Equal(["ann", "bob", "carol@afp548.com"], content.Entries["team"].Targets.Select(t => t.Value));
        Assert.Equal($"{path}:4", content.Entries["team"].Source);
        Assert.Equal((AliasTargetKind.Command, "|/usr/bin/procmail -a x"), (content.Entries["runner"].Targets[0].Kind, content.Entries["runner"].Targets[0].Value));
        Assert.Contains(include, content.FilesRead.Select(f => f.Path));
    }

    [Fact]
    public void Broken_lines_duplicates_and_missing_includes_are_problems_with_file_and_line_and_the_rest_is_used()
    {
        var path = Write("aliases", "good: ann\nno colon here\ngood: bob\nempty:\nlost: :include:/nonexistent/list\n");
        var content = AliasFile.Read([path]);
        Assert.Equal(["ann"], content.Entries["good"].Targets.Select(t => t.Value));
        var problems = content.Problems.Select(p => p.ToString()).ToList();
        Assert.Contains(problems, p => p.StartsWith($"{path}:2: not an alias", StringComparison.Ordinal));
        Assert.DoesNotContain(problems, p => p.Contains("no colon here", StringComparison.Ordinal)); // what the line holds is for check only
        Assert.Contains(content.Problems, p => p.Detail == "no colon here");
        Assert.Contains(problems, p => p.StartsWith($"{path}:3: alias good is defined again", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith($"{path}:4: alias empty has no target", StringComparison.Ordinal));
        var lost = Assert.Single(content.Entries["lost"].Targets);
        Assert.Equal((AliasTargetKind.Unusable, $"{path}:5"), (lost.Kind, lost.Source));
        Assert.StartsWith("cannot be opened: No such file or directory", lost.Why, StringComparison.Ordinal);
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

    [Fact]
    public void Quoted_local_parts_in_an_alias_file_are_read_as_rcpt_reads_them()
    {
        // A quoted name and quoted targets, with quoted-pairs: the file's "ge\orge"@afp548.com is the address a client
        // sends as RCPT "ge\orge"@afp548.com, which routes as george (RFC 5321 4.1.2).
        var content = AliasFile.Read([Write("aliases", """
            "st\aff": "ann", "ge\orge"@afp548.com, "bob"@AFP548.com
            "jo\hn": "john doe"@afp548.com
            """)]);

        Assert.Empty(content.Problems);
        Assert.Equal(["staff", "john"], content.Entries.Keys);
        Assert.Equal(["ann", "george@afp548.com", "bob@afp548.com"], content.Entries["staff"].Targets.Select(t => t.Value));
        Assert.Equal(["john doe@afp548.com"], content.Entries["john"].Targets.Select(t => t.Value));

        var table = Table(Aliases("staff: \"ann\", \"ge\\orge\"@afp548.com, \"bob\"@afp548.com\n"));
        var staff = table.Resolve("staff", "afp548.com");
        Assert.True(staff.IsAccepted, staff.Refusal.ToString());
        Assert.Equal(["ann", "george", "bob"], staff.Recipients.Select(r => r.User.ShortName));
    }

    [Fact]
    public void A_quoted_pair_inside_quotes_neither_ends_them_nor_splits_the_target()
    {
        // "a\",b"@afp548.com is one address (local part a",b), as RCPT reads it; the escaped quote must not end the
        // quotes, or the comma after it would split the target in two.
        var content = AliasFile.Read([Write("aliases", """
            odd: "a\",b"@afp548.com, ann
            """)]);

        Assert.Empty(content.Problems);
        Assert.Equal(["a\",b@afp548.com", "ann"], content.Entries["odd"].Targets.Select(t => t.Value));
    }

    [Theory]
    [InlineData("a: b\nb: a\n", "a", "554 5.4.6 <a@afp548.com>: alias a loops: a -> b -> a")]
    [InlineData("pipe: ann, \"|/bin/cat\"\n", "pipe", "550 5.3.5 <pipe@afp548.com>: alias pipe expands to a command (")]
    [InlineData("file: /tmp/mail.log\n", "file", "550 5.3.5 <file@afp548.com>: alias file expands to a file (")]
    [InlineData("away: someone@elsewhere.org\n", "away", "550 5.3.5 <away@afp548.com>: alias away expands to a remote address (")]
    [InlineData("ghost: nobody-here\n", "ghost", "550 5.1.1 <ghost@afp548.com>: alias ghost (")]
    [InlineData("lost: :include:relative/list\n", "lost", "550 5.3.5 <lost@afp548.com>: alias lost: the :include: file named at ")]
    public void What_bridge_cannot_deliver_is_refused_at_rcpt_with_the_reason(string aliases, string name, string refusal)
    {
        var route = Table(Aliases(aliases)).Resolve(name, "afp548.com");
        Assert.False(route.IsAccepted);
        Assert.StartsWith(refusal, route.Refusal.ToString(), StringComparison.Ordinal);
        // A reply never carries what a file holds: no target, no member's name.
        foreach (var word in new[] { "/bin/cat", "/tmp/mail.log", "someone", "nobody-here", "relative" })
        {
            Assert.DoesNotContain(word, route.Refusal.Text, StringComparison.Ordinal);
        }
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
        Assert.EndsWith("aliases:2: alias pipe: a target is a command, which Bridge cannot deliver; mail to pipe is refused at RCPT", problems[0].ToString(), StringComparison.Ordinal);
        Assert.Equal("|/bin/cat", problems[0].Detail); // for `mailbridge check`, which the administrator runs
        Assert.EndsWith("aliases:3: alias far: a target is a remote address, which Bridge cannot deliver; mail to far is refused at RCPT", problems[1].ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void An_edited_file_is_read_again_without_a_restart()
    {
        var aliases = Aliases("team: ann\n");
        var table = Table(aliases);
        var reported = new List<string>();
        aliases.Report = reported.Add;
        Assert.Equal(["ann"], table.Resolve("team", "afp548.com").Recipients.Select(r => r.User.ShortName));
        Assert.False(aliases.CheckForChanges()); // nothing changed: nothing read

        Write("aliases", "team: ann, bob\nbroken line\n");
        File.SetLastWriteTimeUtc(Path.Combine(_dir, "aliases"), DateTime.UtcNow.AddSeconds(5));

        Assert.True(aliases.CheckForChanges());
        Assert.Equal(["ann", "bob"], table.Resolve("team", "afp548.com").Recipients.Select(r => r.User.ShortName));
        Assert.Single(reported, p => p.Contains(":2: not an alias", StringComparison.Ordinal));
    }

    [Fact]
    public void A_reading_that_fails_keeps_the_last_good_table_and_is_tried_again_at_the_next_change()
    {
        var aliases = Aliases("team: ann\n");
        var table = Table(aliases);
        var reported = new List<string>();
        aliases.Report = reported.Add;
        var path = Path.Combine(_dir, "aliases");

        File.Delete(path);
        Assert.Equal(0, Mkfifo(path)); // a FIFO: opened without waiting for a writer, refused by fstat
        Assert.False(aliases.CheckForChanges());
        Assert.Equal(["ann"], table.Resolve("team", "afp548.com").Recipients.Select(r => r.User.ShortName));
        Assert.Contains(reported, p => p.Contains("is a FIFO, not a regular file", StringComparison.Ordinal) &&
            p.Contains("the aliases read before stay in force", StringComparison.Ordinal));
        Assert.False(aliases.CheckForChanges()); // not tried again until it changes

        File.Delete(path);
        Write("aliases", "team: bob\n");
        Assert.True(aliases.CheckForChanges());
        Assert.Equal(["bob"], table.Resolve("team", "afp548.com").Recipients.Select(r => r.User.ShortName));
    }

    [Fact]
    public void Without_a_good_reading_every_local_recipient_is_deferred_never_refused_for_good()
    {
        var missing = Path.Combine(_dir, "not-there");
        var aliases = new AliasTable([missing], ["afp548.com"]);
        Assert.False(aliases.Available);
        var route = Table(aliases).Resolve("george", "afp548.com");
        Assert.StartsWith("451 4.3.0 <george@afp548.com>: the alias files (Bridge:AliasFiles) cannot be read yet", route.Refusal.ToString(), StringComparison.Ordinal);

        Write("not-there", "team: ann\n");
        Assert.True(aliases.CheckForChanges());
        Assert.True(aliases.Available);
        Assert.Equal("george", Table(aliases).Resolve("george", "afp548.com").Recipient?.User.ShortName);
    }

    [Fact]
    public void A_list_whose_only_line_names_an_unusable_include_is_blamed_at_that_line_not_where_the_list_is_named()
    {
        var inner = Path.Combine(_dir, "inner");
        Assert.Equal(0, Mkfifo(inner));
        var outer = Write("outer", $":include:{inner}\n");
        var aliases = Aliases($"list: :include:{outer}\n");

        var route = Table(aliases).Resolve("list", "afp548.com");
        Assert.Equal("550 5.3.5", $"{route.Refusal.Code} {route.Refusal.Enhanced}");
        Assert.Contains($"the :include: file named at {outer}:1 cannot be used", route.Refusal.Text, StringComparison.Ordinal);
        var problem = Assert.Single(aliases.Problems);
        Assert.StartsWith($"{outer}:1: alias list: the :include: file named there is a FIFO", problem.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("fifo")]
    [InlineData("/dev/zero")]
    [InlineData("big")]
    [InlineData("group-writable")]
    [InlineData("symlink")]
    [InlineData("hardlink")]
    public void An_include_that_is_not_a_safe_small_regular_file_is_never_read_and_makes_its_alias_undeliverable(string kind)
    {
        var include = kind == "/dev/zero" ? "/dev/zero" : Path.Combine(_dir, "list");
        switch (kind)
        {
            case "fifo":
                Assert.Equal(0, Mkfifo(include));
                break;
            case "big":
                Write("list", string.Concat(Enumerable.Repeat("ann\n", 300)));
                break;
            case "group-writable":
                Write("list", "ann\n");
                File.SetUnixFileMode(include, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
                break;
            case "symlink":
                File.CreateSymbolicLink(include, Write("real", "ann\n"));
                break;
            case "hardlink":
                Assert.Equal(0, Link(Write("real", "ann\n"), include));
                break;
        }
        var aliases = Aliases($"list: bob, :include:{include}\n", new AliasLimits(1000, 100));

        var route = Table(aliases).Resolve("list", "afp548.com");
        Assert.Equal("550 5.3.5", $"{route.Refusal.Code} {route.Refusal.Enhanced}");
        Assert.Contains("alias list: the :include: file named at ", route.Refusal.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(include, route.Refusal.Text, StringComparison.Ordinal);
        var problem = Assert.Single(aliases.Problems);
        Assert.Contains(kind switch
        {
            "fifo" => "is a FIFO, not a regular file",
            "/dev/zero" => "is a character device, not a regular file",
            "big" => "more than Bridge:Aliases:MaxFileBytes (1000)",
            "group-writable" => "can be written by others than its owner (mode 660)",
            "symlink" => "is a symbolic link (never followed)",
            _ => "has 2 hard links",
        }, problem.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void An_alias_over_the_member_limit_is_refused_and_a_wide_alias_expands_in_linear_time()
    {
        var members = string.Join(", ", Enumerable.Range(0, 50).Select(i => $"u{i}"));
        var refused = Table(Aliases($"big: {members}\n", new AliasLimits(1 << 20, 20))).Resolve("big", "afp548.com");
        Assert.StartsWith("550 5.3.5 <big@afp548.com>: alias big expands to more than 20 users (Bridge:Aliases:MaxMembers)", refused.Refusal.ToString(), StringComparison.Ordinal);

        // 10 levels of 30 aliases, each naming all 30 of the next level: 30^10 paths, 300 entries. Walked once each.
        var text = new System.Text.StringBuilder("top: " + string.Join(", ", Enumerable.Range(0, 30).Select(j => $"l0x{j}")) + "\n");
        for (var level = 0; level < 8; level++)
        {
            for (var i = 0; i < 30; i++)
            {
                text.Append($"l{level}x{i}: ").Append(string.Join(", ", Enumerable.Range(0, 30).Select(j => $"l{level + 1}x{j}"))).Append('\n');
            }
        }
        for (var i = 0; i < 30; i++)
        {
            text.Append($"l8x{i}: ann, bob\n");
        }
        var wide = new AliasTable([Write("wide", text.ToString())], ["afp548.com"]).Expand("top", _ => null);
        Assert.NotNull(wide);
        Assert.Null(wide.Problem);
        Assert.Equal(["ann", "bob"], wide.Names);
    }

    [Fact]
    public void Lists_that_name_each_other_are_read_once_each_and_expand_in_linear_time_and_memory()
    {
        // k lines that each include the list itself: flattened, k^5 targets (20 lines: 3.2 million); as shared lists, 5 x 20.
        var list = Path.Combine(_dir, "self.list");
        File.WriteAllText(list, string.Concat(Enumerable.Repeat($":include:{list}\n", 20)) + "ann\n");
        var before = GC.GetAllocatedBytesForCurrentThread();
        var aliases = Aliases($"loop: :include:{list}\n");
        var route = Table(aliases).Resolve("loop", "afp548.com");
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.False(route.IsAccepted); // the innermost level is nested too deep: the alias is not used
        Assert.StartsWith("550 5.3.5 <loop@afp548.com>: alias loop: the :include: file named at", route.Refusal.ToString(), StringComparison.Ordinal);
        Assert.True(allocated < 50 << 20, $"{allocated} bytes allocated");
        Assert.True(aliases.Problems.Count <= 20, $"{aliases.Problems.Count} problems: each line of the deepest list once, not per path to it");
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int Mkfifo(string path, uint mode = 0x180);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "link", SetLastError = true)]
    private static extern int Link(string existing, string name);

    [Fact]
    public void Without_alias_files_nothing_changes() =>
        Assert.Equal("george", new RoutingTable(["afp548.com"], [(["george"], null)], "+", null, new AliasTable([], ["afp548.com"]))
            .Resolve("george", "afp548.com").Recipient?.User.ShortName);
}
