using Bridge.Tests.Support;

namespace Bridge.Tests.Operations;

/// <summary>`bridge check --dovecot-config FILE` reading a real Dovecot configuration with doveconf: the deploy snippet
/// passes; each mistake that keeps users from their spooled mail, or Bridge from the store, fails with its fix.</summary>
public class DovecotCheckTests
{
    private static async Task<string[]> CheckAsync(string spoolMode, string[] dovecotLines, params string[] settings)
    {
        Peers.RequireRoot();
        Peers.Require("doveconf", "dovecot-core");
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode(spoolMode));
        await Proc.RunAsync("chgrp", ["mail", spool.Path]);
        var config = DoveconfFile.Write(dir, spool.Path, dovecotLines);
        var result = await BridgeProcess.RunToExitAsync(dir, ["check", "--dovecot-config", config, $"--Bridge:Spool:Directory={spool.Path}",
            $"--Bridge:Spool:JournalDirectory={dir["journal"]}", $"--Bridge:Listen:Port={FreePort.Next()}", $"--Bridge:LocalDomains:0={SpoolScenario.Domain}", .. settings]);
        return [.. result.Stdout.Split('\n').Where(l => l.Contains(" dovecot ", StringComparison.Ordinal)).Select(l => l.Replace(config, "FILE", StringComparison.Ordinal))];
    }

    [Fact]
    public async Task The_deploy_snippet_passes()
    {
        var lines = await CheckAsync("1777", []);

        Assert.Equal(3, lines.Length);
        Assert.All(lines, l => Assert.StartsWith("OK ", l, StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("INBOX is ", StringComparison.Ordinal) && l.Contains("/%u: Bridge's spool", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("1777", "mail_location = maildir:~/Maildir", "FAIL", "they see no new mail", "-- fix: mail_location = mbox:~/mail:INBOX=")]
    [InlineData("1777", "mail_location = mbox:~/mail:INBOX=/var/spool/other/%u", "FAIL", "users' INBOX is /var/spool/other/%u", "(deploy/dovecot/10-bridge-spool.conf)")]
    [InlineData("1777", "mbox_write_locks = flock", "FAIL", "mbox_write_locks = flock: no lock Bridge takes", "-- fix: mbox_write_locks = dotlock fcntl in FILE")]
    [InlineData("1777", "mbox_write_locks = fcntl", "WARN", "mbox_write_locks = fcntl: shares one method", "-- fix: mbox_write_locks = dotlock fcntl in FILE")]
    [InlineData("2775", "mail_privileged_group =", "FAIL", "Dovecot cannot create dotlocks in", "-- fix: mail_privileged_group = mail in FILE")]
    public async Task Each_mistake_is_named_with_the_setting_to_change(string spoolMode, string mistake, string level, string text, string fix)
    {
        var lines = await CheckAsync(spoolMode, [mistake]);

        var line = Assert.Single(lines, l => l.Contains(text, StringComparison.Ordinal));
        Assert.StartsWith(level + " ", line, StringComparison.Ordinal);
        Assert.Contains(fix, line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_2775_mail_spool_with_mail_privileged_group_mail_passes()
    {
        var lines = await CheckAsync("2775", ["mail_privileged_group = mail"]);

        Assert.Contains(lines, l => l.StartsWith("OK ", StringComparison.Ordinal) && l.Contains("mail_privileged_group = mail can create dotlocks", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(2424, 2424, "OK", "service lmtp listens on port 2424 (Bridge:Legacy:Port)")]
    [InlineData(2424, 2525, "FAIL", "no lmtp listener on port 2525 (Bridge:Legacy:Port); lmtp listens on 2424")]
    public async Task In_legacy_mode_the_stores_lmtp_listener_must_be_bridges_target(int listening, int configured, string level, string text)
    {
        var lines = await CheckAsync("1777", [$"service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {listening}\n  }}\n}}"],
            "--Bridge:Mode=Legacy", "--Bridge:Legacy:Host=127.0.0.1", $"--Bridge:Legacy:Port={configured}");

        var line = Assert.Single(lines);
        Assert.StartsWith(level + " ", line, StringComparison.Ordinal);
        Assert.Contains(text, line, StringComparison.Ordinal);
    }
}
