using System.Diagnostics;
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.SecurityTests;

/// <summary>Issue #23 items 1, 4 and 5: root's aliases file names a list the intruder keeps (":include:"), and the
/// intruder makes that list name a root-only file, a FIFO, /dev/zero or a huge file. Bridge must open what the list
/// names with the intruder's rights, never block or exhaust memory on it, never keep delivering less than a reload,
/// and never tell any client what a file holds.</summary>
public class IncludeFileAttacks
{
    private const string Domain = Daemon.Domain;

    /// <summary>The intruder's list, named in root's aliases file; and a root-only file holding a valid local name.</summary>
    private sealed class Setup : IDisposable
    {
        public required Intruder Intruder { get; init; }
        public required TempDir Home { get; init; }
        public required TempDir Etc { get; init; }
        public required TempDir Secret { get; init; }

        public string List => Home["list"];
        public string Aliases => Etc["aliases"];
        public string SecretFile => Secret["victim-only"];

        public void Dispose()
        {
            Home.Dispose();
            Etc.Dispose();
            Secret.Dispose();
        }
    }

    private static async Task<Setup> PrepareAsync()
    {
        var intruder = await Intruder.EnsureAsync();
        var home = intruder.Home();
        var etc = new TempDir("bridge-etc", TempDir.Mode("755"));
        var secret = new TempDir("bridge-secret", TempDir.Mode("700"));
        await File.WriteAllTextAsync(secret["victim-only"], $"{TestAccounts.Alice}\n"); // root's, 0600: a name the intruder must not learn or use
        File.SetUnixFileMode(secret["victim-only"], TempDir.Mode("600"));
        var setup = new Setup { Intruder = intruder, Home = home, Etc = etc, Secret = secret };
        await WriteListAsync(setup, $"{TestAccounts.Bob}\n");
        await File.WriteAllTextAsync(setup.Aliases, $"# root's\nevillist: :include:{setup.List}\n");
        return setup;
    }

    /// <summary>The intruder replaces its list (write aside, rename: as an editor saves).</summary>
    private static async Task WriteListAsync(Setup setup, string text)
    {
        var done = await setup.Intruder.ShAsync($"printf %s {Proc.Quote(text)} > {Proc.Quote(setup.List)}.new && mv {Proc.Quote(setup.List)}.new {Proc.Quote(setup.List)}");
        Assert.True(done.ExitCode == 0, done.Output);
    }

    private static async Task<string> RcptReplyAsync(int port, string recipient)
    {
        var (session, greeting) = await RawSmtp.ConnectAsync(port);
        using (session)
        {
            Assert.StartsWith("220 ", greeting, StringComparison.Ordinal);
            await session.CommandAsync("EHLO client.test");
            await session.CommandAsync("MAIL FROM:<someone@example.org>");
            return await session.CommandAsync($"RCPT TO:<{recipient}>");
        }
    }

    [Theory]
    [InlineData(RunAs.Root)]
    [InlineData(RunAs.Unit)]
    public async Task A_root_only_file_named_in_the_intruders_list_is_opened_with_the_intruders_rights_and_never_quoted(RunAs runAs)
    {
        using var setup = await PrepareAsync();
        await using var daemon = await Daemon.StartAsync(runAs, $"Bridge:AliasFiles:0={setup.Aliases}");

        // Control: what the intruder may name works (so the refusal below is the rights, not a broken setup).
        var accepted = await Swaks.SendAsync(daemon.Port, $"evillist@{Domain}");
        Assert.True(accepted.FinalReply.StartsWith("250 ", StringComparison.Ordinal), accepted.Transcript + daemon.Log);
        Assert.True(File.Exists(daemon.Spool[TestAccounts.Bob]));

        foreach (var target in new[] { setup.SecretFile, "/etc/shadow" })
        {
            var logged = $"{setup.List}:1: alias evillist: the :include: file named there cannot be opened with the rights of {Intruder.Login}";
            var before = daemon.Process.Lines.Count(l => l.Contains(logged, StringComparison.Ordinal));
            await WriteListAsync(setup, $":include:{target}\n");
            await Eventually.WaitAsync(() => daemon.Process.Lines.Count(l => l.Contains(logged, StringComparison.Ordinal)) > before, 10,
                () => $"this reading's refusal was not logged:\n{daemon.Log}");
            var reply = await RcptReplyAsync(daemon.Port, $"evillist@{Domain}");

            Assert.StartsWith($"550 5.3.5 <evillist@{Domain}>: alias evillist: the :include: file named at {setup.List}:1 cannot be used", reply, StringComparison.Ordinal);
            Assert.DoesNotContain(TestAccounts.Alice, reply, StringComparison.Ordinal);
            Assert.DoesNotContain("root:", reply, StringComparison.Ordinal);
            Assert.DoesNotContain(target, reply, StringComparison.Ordinal);

            // resolve says the same, and nothing the files hold.
            var resolve = await BridgeProcess.RunToExitAsync(daemon.Work, ["resolve", $"evillist@{Domain}",
                .. Daemon.Arguments(daemon.Spool, daemon.State, daemon.Port, [$"Bridge:AliasFiles:0={setup.Aliases}"])]);
            Assert.Contains("550 5.3.5", resolve.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("root:", resolve.Output, StringComparison.Ordinal);
            Assert.DoesNotContain($"expands to {TestAccounts.Alice}", resolve.Output, StringComparison.Ordinal);

            await WriteListAsync(setup, $"{TestAccounts.Bob}\n"); // back to what it may name, so the next round starts from a 250
            await Eventually.WaitAsync(async () => (await RcptReplyAsync(daemon.Port, $"evillist@{Domain}")).StartsWith("250", StringComparison.Ordinal), 10);
        }
        Assert.False(File.Exists(daemon.Spool[TestAccounts.Alice]), "nothing was delivered to the name in the root-only file");
        Assert.DoesNotContain("root:", daemon.Log, StringComparison.Ordinal);
        Assert.DoesNotContain($"expands to {TestAccounts.Alice}", daemon.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_include_file_that_others_can_write_or_that_is_a_link_is_not_used()
    {
        using var setup = await PrepareAsync();
        await using var daemon = await Daemon.StartAsync(RunAs.Root, $"Bridge:AliasFiles:0={setup.Aliases}");
        Assert.StartsWith("250 ", await RcptReplyAsync(daemon.Port, $"evillist@{Domain}"), StringComparison.Ordinal);

        Assert.Equal(0, (await setup.Intruder.ShAsync($"chmod 666 {Proc.Quote(setup.List)}")).ExitCode);
        await Eventually.WaitAsync(async () => (await RcptReplyAsync(daemon.Port, $"evillist@{Domain}")).StartsWith("550 5.3.5", StringComparison.Ordinal), 10);
        Assert.Contains("can be written by others than its owner (mode 666)", daemon.Log, StringComparison.Ordinal);

        Assert.Equal(0, (await setup.Intruder.ShAsync($"rm -f {Proc.Quote(setup.List)} && ln -s {Proc.Quote(setup.SecretFile)} {Proc.Quote(setup.List)}")).ExitCode);
        await Eventually.WaitAsync(() => daemon.Log.Contains("is a symbolic link (never followed)", StringComparison.Ordinal), 10, () => daemon.Log);
        Assert.StartsWith("550 5.3.5", await RcptReplyAsync(daemon.Port, $"evillist@{Domain}"), StringComparison.Ordinal);
        Assert.False(File.Exists(daemon.Spool[TestAccounts.Alice]));
    }

    [Fact]
    public async Task A_fifo_as_the_include_file_stalls_no_delivery_and_replacing_it_recovers_without_a_restart()
    {
        using var setup = await PrepareAsync();
        await using var daemon = await Daemon.StartAsync(RunAs.Root, $"Bridge:AliasFiles:0={setup.Aliases}");
        Assert.Equal(0, (await setup.Intruder.ShAsync($"rm -f {Proc.Quote(setup.List)} && mkfifo {Proc.Quote(setup.List)}")).ExitCode);
        await Eventually.WaitAsync(() => daemon.Log.Contains("is a FIFO, not a regular file", StringComparison.Ordinal), 10, () => daemon.Log);

        // Every other recipient is answered at once, again and again; new connections are greeted.
        for (var i = 0; i < 5; i++)
        {
            var clock = Stopwatch.StartNew();
            Assert.StartsWith("250 ", await RcptReplyAsync(daemon.Port, $"{TestAccounts.Alice}@{Domain}"), StringComparison.Ordinal);
            Assert.StartsWith("550 5.3.5", await RcptReplyAsync(daemon.Port, $"evillist@{Domain}"), StringComparison.Ordinal);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"a RCPT took {clock.Elapsed}");
            await Task.Delay(300);
        }

        // A verb that reads the aliases (collect, run at every IMAP login) ends too.
        var collect = await BridgeProcess.RunToExitAsync(daemon.Work, ["collect", "--user", TestAccounts.Alice,
            .. Daemon.Arguments(daemon.Spool, daemon.State, daemon.Port, [$"Bridge:AliasFiles:0={setup.Aliases}"])]);
        Assert.Equal(0, collect.ExitCode);

        Assert.Equal(0, (await setup.Intruder.ShAsync($"rm -f {Proc.Quote(setup.List)} && echo {TestAccounts.Bob} > {Proc.Quote(setup.List)}")).ExitCode);
        await Eventually.WaitAsync(async () => (await RcptReplyAsync(daemon.Port, $"evillist@{Domain}")).StartsWith("250 ", StringComparison.Ordinal), 10,
            () => daemon.Log);
    }

    [Theory]
    [InlineData("symlink to /dev/zero")]
    [InlineData(":include:/dev/zero")]
    [InlineData("sparse 2 GiB file")]
    public async Task An_endless_or_huge_include_file_is_refused_with_its_limit_and_memory_stays_bounded(string attack)
    {
        using var setup = await PrepareAsync();
        await using var daemon = await Daemon.StartAsync(RunAs.Root, $"Bridge:AliasFiles:0={setup.Aliases}");
        var rss = daemon.ResidentBytes;
        var list = Proc.Quote(setup.List);
        var step = attack switch
        {
            "symlink to /dev/zero" => $"rm -f {list} && ln -s /dev/zero {list}",
            ":include:/dev/zero" => $"echo :include:/dev/zero > {list}.new && mv {list}.new {list}",
            _ => $"rm -f {list} && truncate -s 2G {list}",
        };
        Assert.Equal(0, (await setup.Intruder.ShAsync(step)).ExitCode);
        var expected = attack switch
        {
            "symlink to /dev/zero" => "is a symbolic link (never followed)",
            ":include:/dev/zero" => "is a character device, not a regular file",
            _ => "more than Bridge:Aliases:MaxFileBytes (4194304)",
        };
        await Eventually.WaitAsync(() => daemon.Log.Contains(expected, StringComparison.Ordinal), 10, () => daemon.Log);
        Assert.StartsWith("550 5.3.5", await RcptReplyAsync(daemon.Port, $"evillist@{Domain}"), StringComparison.Ordinal);
        Assert.True(daemon.ResidentBytes < rss + (64 << 20), $"RSS grew from {rss} to {daemon.ResidentBytes} bytes");
    }

    [Fact]
    public async Task Without_the_units_setuid_and_setgid_a_users_include_is_refused_and_the_daemon_runs_on()
    {
        using var setup = await PrepareAsync();
        await WriteListAsync(setup, $":include:{setup.SecretFile}\n");
        await using var daemon = await Daemon.StartAsync(RunAs.UnitWithoutSetId, $"Bridge:AliasFiles:0={setup.Aliases}");

        Assert.StartsWith("550 5.3.5", await RcptReplyAsync(daemon.Port, $"evillist@{Domain}"), StringComparison.Ordinal);
        Assert.Contains("Bridge lacks CAP_SETUID and CAP_SETGID", daemon.Log, StringComparison.Ordinal);
        Assert.StartsWith("250 ", await RcptReplyAsync(daemon.Port, $"{TestAccounts.Bob}@{Domain}"), StringComparison.Ordinal);
        Assert.False(daemon.Process.HasExited, daemon.Log);
    }

    [Fact]
    public async Task A_list_that_includes_itself_many_times_costs_a_linear_reading()
    {
        using var setup = await PrepareAsync();
        await using var daemon = await Daemon.StartAsync(RunAs.Root, $"Bridge:AliasFiles:0={setup.Aliases}");
        var rss = daemon.ResidentBytes;
        // 30 lines that include the list itself: as a flat list 30^5 = 24 million targets; as shared lists 150.
        await WriteListAsync(setup, string.Concat(Enumerable.Repeat($":include:{setup.List}\n", 30)) + $"{TestAccounts.Bob}\n");

        await Eventually.WaitAsync(() => daemon.Log.Contains("is nested more than 5 includes deep", StringComparison.Ordinal), 15, () => daemon.Log);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.StartsWith("550 5.3.5", await RcptReplyAsync(daemon.Port, $"evillist@{Domain}"), StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the RCPT took {clock.Elapsed}");
        Assert.True(daemon.ResidentBytes < rss + (64 << 20), $"RSS grew from {rss} to {daemon.ResidentBytes} bytes");
    }

    [Fact]
    public async Task The_intruders_list_cannot_borrow_another_users_rights_by_naming_that_users_file()
    {
        // Bob keeps a list only Bob can read; the intruder's list names it. Postfix's rule: the intruder's rights stay.
        using var setup = await PrepareAsync();
        using var bobs = new TempDir("bridge-bob", TempDir.Mode("700"));
        var bob = await TestAccounts.EnsureAsync(TestAccounts.Bob);
        await File.WriteAllTextAsync(bobs["list"], $"{TestAccounts.Alice}\n");
        File.SetUnixFileMode(bobs["list"], TempDir.Mode("600"));
        Assert.Equal(0, Libc.Lchown(bobs["list"], bob.Uid, bob.Gid));
        Assert.Equal(0, Libc.Lchown(bobs.Path, bob.Uid, bob.Gid));
        await WriteListAsync(setup, $":include:{bobs["list"]}\n");

        await using var daemon = await Daemon.StartAsync(RunAs.Root, $"Bridge:AliasFiles:0={setup.Aliases}");
        Assert.StartsWith("550 5.3.5", await RcptReplyAsync(daemon.Port, $"evillist@{Domain}"), StringComparison.Ordinal);
        Assert.Contains($"cannot be opened with the rights of {Intruder.Login}", daemon.Log, StringComparison.Ordinal);
    }
}
