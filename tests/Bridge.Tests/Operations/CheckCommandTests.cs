using Bridge.Tests.Support;

namespace Bridge.Tests.Operations;

/// <summary>`mailbridge check`, `--version` and `--help`, run as the executable an admin runs.</summary>
public class CheckCommandTests
{
    private static string[] Settings(TempDir spool, TempDir dir, int port) =>
    [
        $"--Bridge:Spool:Directory={spool.Path}", $"--Bridge:Spool:JournalDirectory={dir["journal"]}", $"--Bridge:Listen:Port={port}",
        $"--Bridge:LocalDomains:0={SpoolScenario.Domain}", $"--Bridge:Users:0:ShortNames:0={TestAccounts.Alice}",
    ];

    [Fact]
    public async Task A_sound_setup_is_all_ok_and_exits_0()
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        SpoolScenario.CreateMailbox(spool[TestAccounts.Alice], SpoolScenario.SampleMbox, alice.Uid, alice.Gid);

        var result = await BridgeProcess.RunToExitAsync(dir, ["check", "--dovecot-config", DoveconfFile.Write(dir, spool.Path), .. Settings(spool, dir, FreePort.Next())]);

        Assert.True(result.ExitCode == 0, result.Output);
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lines, l => Assert.StartsWith("OK ", l, StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains($"user {TestAccounts.Alice}: {spool[TestAccounts.Alice]}: owner, type and mode are right", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_seeds_permission_problem_is_named_with_its_fix()
    {
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("755")); // root's, not writable by Bridge's user

        var result = await BridgeProcess.RunAsNobodyAsync(dir, ["check", .. Settings(spool, dir, 627)]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"WARN spool {spool.Path}: mode 755", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"-- fix: chmod 1777 {spool.Path}", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"FAIL dotlocks {spool.Path}: Bridge (uid 65534) cannot create files here", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("FAIL listen 127.0.0.1:627: permission denied -- fix: run as root or with CAP_NET_BIND_SERVICE", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_spool_directory_the_mailbox_owners_cannot_enter_fails_and_names_them()
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        var bob = await TestAccounts.EnsureAsync(TestAccounts.Bob);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("700"));
        await Proc.RunAsync("chown", [$"{bob.Uid}:{bob.Gid}", spool.Path]); // bob's private folder
        SpoolScenario.CreateMailbox(spool[TestAccounts.Alice], SpoolScenario.SampleMbox, alice.Uid, alice.Gid);

        var result = await BridgeProcess.RunToExitAsync(dir, ["check", .. Settings(spool, dir, FreePort.Next())]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"FAIL spool {spool.Path}: mode 700 (owner uid {bob.Uid}, gid {bob.Gid}): {TestAccounts.Alice} cannot enter it, so their mail readers cannot open their mailboxes",
            result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"-- fix: chmod 1777 {spool.Path}", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain($"{TestAccounts.Bob} cannot enter", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Wrong_mailbox_owner_and_symlinks_fail_with_the_fix()
    {
        var bob = await TestAccounts.EnsureAsync(TestAccounts.Bob);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        SpoolScenario.CreateMailbox(spool[TestAccounts.Alice], SpoolScenario.SampleMbox, bob.Uid, bob.Gid);
        File.CreateSymbolicLink(spool[TestAccounts.Bob], "/etc/passwd");

        var result = await BridgeProcess.RunToExitAsync(dir, ["check", .. Settings(spool, dir, FreePort.Next()),
            $"--Bridge:Users:1:ShortNames:0={TestAccounts.Bob}"]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"FAIL user {TestAccounts.Alice}: {spool[TestAccounts.Alice]} is owned by uid {bob.Uid}, not by its user", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"-- fix: chown {TestAccounts.Alice} {spool[TestAccounts.Alice]}", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"FAIL user {TestAccounts.Bob}: {spool[TestAccounts.Bob]} is a symbolic link", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task In_legacy_mode_the_store_is_tried_and_its_greeting_shown()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice);
        string[] legacy = ["check", "--dovecot-config", store.ConfigPath, .. Settings(spool, dir, FreePort.Next()), "--Bridge:Mode=Legacy",
            "--Bridge:Legacy:Host=127.0.0.1", "--Bridge:Legacy:Protocol=Lmtp"];

        var up = await BridgeProcess.RunToExitAsync(dir, [.. legacy, $"--Bridge:Legacy:Port={store.LmtpPort}"]);
        var down = await BridgeProcess.RunToExitAsync(dir, [.. legacy, $"--Bridge:Legacy:Port={FreePort.Next()}"]);

        Assert.True(up.ExitCode == 0, up.Output);
        Assert.Contains($"OK   store lmtp:[127.0.0.1]:{store.LmtpPort}: answers (220 ", up.Stdout, StringComparison.Ordinal);
        Assert.Contains("Dovecot", up.Stdout, StringComparison.Ordinal);
        Assert.Contains($"OK   dovecot {store.ConfigPath}: service lmtp listens on port {store.LmtpPort} (Bridge:Legacy:Port)", up.Stdout, StringComparison.Ordinal);
        Assert.Equal(1, down.ExitCode);
        Assert.Contains("Connection refused -- fix: start the mail store", down.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_setting_is_a_fail_naming_the_key()
    {
        using var dir = new TempDir("bridge-daemon");
        var result = await BridgeProcess.RunToExitAsync(dir, "check", "--Bridge:Retry:MaxAttempts=0");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("FAIL configuration: Bridge:Retry:MaxAttempts 0 is not in 1..100", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Version_help_and_unknown_commands()
    {
        using var dir = new TempDir("bridge-daemon");

        var version = await BridgeProcess.RunToExitAsync(dir, "--version");
        var help = await BridgeProcess.RunToExitAsync(dir, "--help");
        var checkHelp = await BridgeProcess.RunToExitAsync(dir, "check", "--help");
        var unknown = await BridgeProcess.RunToExitAsync(dir, "frobnicate");

        Assert.Matches(@"^mailbridge \d+\.\d+\.\d+\n$", version.Stdout);
        Assert.Contains("check         check the configuration and this machine", help.Stdout, StringComparison.Ordinal);
        Assert.StartsWith("Usage: mailbridge check", checkHelp.Stdout, StringComparison.Ordinal);
        Assert.Equal(64, unknown.ExitCode);
        Assert.Contains("unknown command 'frobnicate'", unknown.Stderr, StringComparison.Ordinal);
    }
}
