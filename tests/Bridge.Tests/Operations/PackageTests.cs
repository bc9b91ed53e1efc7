using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.Tests.Operations;

/// <summary>Installs the real package into this machine's /etc, /usr and /var: nothing else may run meanwhile (a
/// `check` in a directory without appsettings.json would read the installed /etc/bridge one).</summary>
[CollectionDefinition("Package", DisableParallelization = true)]
public class PackageInstallsAlone
{
}

/// <summary>deploy/package.sh builds a .deb that lintian passes and that installs, runs, upgrades, removes and purges
/// with apt-get the way Debian's own mail packages do.</summary>
[Collection("Package")]
public partial class PackageTests
{
    private const string Command = "/usr/sbin/mailbridge";
    private const string Conffile = "/etc/bridge/appsettings.json";

    [GeneratedRegex(@"^(\w+)=(.*)$", RegexOptions.Multiline)]
    private static partial Regex UnitSetting();

    private static readonly Dictionary<string, string> NonInteractive = new() { ["DEBIAN_FRONTEND"] = "noninteractive" };

    [Fact]
    public async Task The_package_builds_lints_installs_runs_upgrades_removes_and_purges_like_a_debian_mail_package()
    {
        Peers.RequireRoot();
        var lintian = Peers.Require("lintian", "lintian");
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        var repository = Repository.Root;
        using var dir = new TempDir("bridge-deb");
        var mailbox = Path.Combine("/var/mail", TestAccounts.Alice);
        Assert.False(File.Exists(mailbox), $"{mailbox} exists before the test: remove it");
        Assert.DoesNotContain("ok installed", (await Proc.RunAsync("dpkg-query", ["-W", "-f=${Status}", "bridge"])).Stdout, StringComparison.Ordinal);

        var first = await BuildAsync(repository, dir, 1);
        var lint = await Proc.RunAsync(lintian, ["--tag-display-limit", "0", first], timeout: TimeSpan.FromMinutes(3));
        Assert.DoesNotContain(lint.Output.Split('\n'), l => l.StartsWith("E:", StringComparison.Ordinal));
        var contents = (await Proc.RunAsync("dpkg-deb", ["-c", first])).Stdout;
        foreach (var path in (string[])["./usr/sbin/mailbridge -> ../lib/bridge/mailbridge", "./usr/lib/bridge/mailbridge", "./etc/bridge/appsettings.json",
                     "./lib/systemd/system/bridge.service", "./usr/share/man/man8/mailbridge.8.gz", "./usr/share/man/man5/mailbridge.json.5.gz",
                     "./usr/share/doc/bridge/copyright", "./usr/share/doc/bridge/examples/postfix/main.cf.snippet",
                     "./usr/share/doc/bridge/examples/exim/router-bridge.conf", "./usr/share/doc/bridge/examples/dovecot/10-bridge-spool.conf",
                     "./usr/lib/bridge/dovecot-collect", "./usr/share/doc/bridge/examples/dovecot/30-bridge-collect.conf"])
        {
            Assert.Contains(path, contents, StringComparison.Ordinal);
        }
        Assert.Equal(Conffile, (await Proc.RunAsync("dpkg-deb", ["-I", first, "conffiles"])).Stdout.Trim());
        var control = (await Proc.RunAsync("dpkg-deb", ["-f", first, "Depends"])).Stdout;
        Assert.DoesNotContain("dotnet", control, StringComparison.OrdinalIgnoreCase);

        try
        {
            await AptAsync("install", "-y", first);
            Assert.Equal("mailbridge 0.1.0", (await Proc.RunAsync(Command, ["--version"])).Stdout.Trim());
            Assert.Equal("/usr/share/man/man8/mailbridge.8.gz", (await Proc.RunAsync("man", ["-w", "mailbridge"])).Stdout.Trim());
            Assert.Equal("/usr/share/man/man5/mailbridge.json.5.gz", (await Proc.RunAsync("man", ["-w", "5", "mailbridge.json"])).Stdout.Trim());
            var page = (await Proc.RunAsync("man", ["-P", "cat", "5", "mailbridge.json"], environment: new Dictionary<string, string> { ["MANWIDTH"] = "200" })).Stdout;
            foreach (var key in (string[])["Bridge:MaxBytesInFlight", "Bridge:Spool:JournalDirectory", "Bridge:Legacy:FallbackToSpool", "Bridge:Metrics:PrometheusPort"])
            {
                Assert.Contains(key, page, StringComparison.Ordinal);
            }
            Assert.Equal(Libc.GetGroupId("mail"), Libc.GetPasswdEntry("bridge")?.Gid);
            Assert.Equal(0, Libc.Lstat("/var/lib/bridge/journal", out var journal));
            Assert.Equal((Libc.GetPasswdEntry("bridge")!.Value.Uid, Convert.ToUInt32("700", 8)), (journal.Uid, journal.Permissions));

            // The administrator edits the conffile; `mailbridge check` run anywhere reads it.
            var edited = (await File.ReadAllTextAsync(Conffile)).Replace("\"bridge.localhost\"", "\"edited.localhost\"", StringComparison.Ordinal);
            Assert.Contains("edited.localhost", edited, StringComparison.Ordinal);
            await File.WriteAllTextAsync(Conffile, edited);
            var check = await Proc.RunAsync("/bin/sh", ["-c", $"cd / && exec {Command} check"]);
            Assert.Contains("OK   configuration: valid; mode Spool, server name edited.localhost", check.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("JournalDirectory", check.Stdout, StringComparison.Ordinal);
            // The administrator's verbs, run as root, use the journal the package gave the daemon's account.
            var drain = await Proc.RunAsync("/bin/sh", ["-c", $"cd / && exec {Command} drain --dry-run"]);
            Assert.DoesNotContain("JournalDirectory", drain.Output, StringComparison.Ordinal);
            Assert.NotEqual(69, drain.ExitCode);

            await RunAsTheUnitDoesAsync(alice.Uid);
            var delivered = await File.ReadAllBytesAsync(mailbox);

            var second = await BuildAsync(repository, dir, 2);
            await AptAsync("install", "-y", second);
            Assert.Equal("0.1.0-2", (await Proc.RunAsync("dpkg-query", ["-W", "-f=${Version}", "bridge"])).Stdout.Trim());
            Assert.Equal(edited, await File.ReadAllTextAsync(Conffile)); // the edited conffile survived the upgrade

            await AptAsync("remove", "-y", "bridge");
            Assert.False(File.Exists(Command));
            Assert.Equal(edited, await File.ReadAllTextAsync(Conffile));
            Assert.Equal(delivered, await File.ReadAllBytesAsync(mailbox));

            await AptAsync("purge", "-y", "bridge");
            Assert.False(Directory.Exists("/etc/bridge"));
            Assert.False(Directory.Exists("/var/lib/bridge/journal"));
            Assert.Equal(delivered, await File.ReadAllBytesAsync(mailbox));
            Assert.True(Directory.Exists("/var/mail"));
        }
        finally
        {
            await Proc.RunAsync("apt-get", ["purge", "-y", "-q", "bridge"], environment: NonInteractive, timeout: TimeSpan.FromMinutes(2));
            File.Delete(mailbox);
        }
    }

    /// <summary>Starts the installed daemon as the unit's ExecStart would (User, Group, AmbientCapabilities,
    /// WorkingDirectory), on a free privileged port, and delivers one message with swaks into /var/mail.</summary>
    private static async Task RunAsTheUnitDoesAsync(uint aliceUid)
    {
        var unit = UnitSetting().Matches(await File.ReadAllTextAsync("/lib/systemd/system/bridge.service"))
            .ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value.Trim());
        Assert.Equal(Command, unit["ExecStart"]);
        var caps = string.Join(',', unit["AmbientCapabilities"].Split(' ').Select(c => "+" + c["CAP_".Length..].ToLowerInvariant()));
        var port = FreePort.Privileged();
        var run = Proc.RunAsync("/bin/sh", ["-c", $"cd {Proc.Quote(unit["WorkingDirectory"])} && exec setpriv --reuid={unit["User"]} --regid={unit["Group"]} " +
            $"--init-groups --inh-caps={caps} --ambient-caps={caps} -- {unit["ExecStart"]} --Bridge:Listen:Port={port} --Bridge:LocalDomains:0={SpoolScenario.Domain}"],
            timeout: TimeSpan.FromSeconds(90));
        try
        {
            Assert.True(await DovecotServer.WaitForPortAsync(port), "the installed daemon did not listen");
            var sent = await Swaks.SendAsync(port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <package@test>"]);
            Assert.True(sent.FinalReply.StartsWith("250 ", StringComparison.Ordinal), sent.Transcript);
        }
        finally
        {
            await Proc.RunAsync("pkill", ["-TERM", "-u", "bridge", "-f", Command]);
            await run;
        }
        var message = Assert.Single(await MboxReaders.PythonMailboxAsync(Path.Combine("/var/mail", TestAccounts.Alice)));
        Assert.Equal("<package@test>", message.MessageId);
        Assert.Equal(0, Libc.Lstat(Path.Combine("/var/mail", TestAccounts.Alice), out var stat));
        Assert.Equal(aliceUid, stat.Uid);
    }

    private static async Task<string> BuildAsync(string repository, TempDir dir, int revision)
    {
        var build = await Proc.RunAsync("/bin/bash", [Path.Combine(repository, "deploy", "package.sh")], timeout: TimeSpan.FromMinutes(8),
            environment: new Dictionary<string, string> { ["OUT"] = dir["dist"], ["REVISION"] = revision.ToString(System.Globalization.CultureInfo.InvariantCulture), ["PUBLISH_DIR"] = dir["publish"] });
        Assert.True(build.ExitCode == 0, build.Output);
        var deb = build.Stdout.Trim().Split('\n')[^1];
        Assert.EndsWith($"bridge_0.1.0-{revision}_{(await Proc.RunAsync("dpkg", ["--print-architecture"])).Stdout.Trim()}.deb", deb, StringComparison.Ordinal);
        return deb;
    }

    private static async Task AptAsync(params string[] args)
    {
        var result = await Proc.RunAsync("apt-get", [.. args.Select(a => a.EndsWith(".deb", StringComparison.Ordinal) ? Path.GetFullPath(a) : a)],
            environment: NonInteractive, timeout: TimeSpan.FromMinutes(3));
        Assert.True(result.ExitCode == 0, $"apt-get {string.Join(' ', args)}: {result.Output}");
    }
}
