using Bridge.Tests.Support;

namespace Bridge.Tests.Operations;

/// <summary>`bridge resolve ADDRESS...`, run as the executable an admin runs: the reply at RCPT and where mail would go.</summary>
public class ResolveCommandTests
{
    [Fact]
    public async Task The_notes_example_shows_the_first_short_names_mailbox_mode_and_target()
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        await TestAccounts.EnsureAsync(TestAccounts.Bob);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        SpoolScenario.CreateMailbox(spool[TestAccounts.Alice], SpoolScenario.SampleMbox, alice.Uid, alice.Gid);

        var result = await BridgeProcess.RunToExitAsync(dir, ["resolve", $"george@{SpoolScenario.Domain}", $"\"gw+tag\"@{SpoolScenario.Domain}",
            $"bob@{SpoolScenario.Domain}", $"no-such-user@{SpoolScenario.Domain}", "x@foreign.example", "nodomain",
            $"--Bridge:Spool:Directory={spool.Path}", $"--Bridge:LocalDomains:0={SpoolScenario.Domain}",
            $"--Bridge:Users:0:ShortNames:0={TestAccounts.Alice}", "--Bridge:Users:0:ShortNames:1=george", "--Bridge:Users:0:ShortNames:2=gw",
            $"--Bridge:Users:1:ShortNames:0={TestAccounts.Bob}", "--Bridge:Users:1:ShortNames:1=bob", "--Bridge:Users:1:Mode=Legacy",
            "--Bridge:Legacy:Host=127.0.0.1", "--Bridge:Legacy:Port=2424"]);

        Assert.Equal(1, result.ExitCode); // some addresses are refused
        var text = result.Stdout;
        Assert.Contains($"george@{SpoolScenario.Domain}: 250 2.1.5 accepted", text, StringComparison.Ordinal);
        Assert.Contains($"  user:    {TestAccounts.Alice}, first short name {TestAccounts.Alice} (configured in Bridge:Users, uid {alice.Uid})", text, StringComparison.Ordinal);
        Assert.Contains($"  mailbox: {spool[TestAccounts.Alice]} (exists, owner uid {alice.Uid}, mode 600, {SpoolScenario.SampleMbox.Length} bytes)", text, StringComparison.Ordinal);
        Assert.Contains($"  mode:    Spool (Bridge:Mode)", text, StringComparison.Ordinal);
        Assert.Contains($"  target:  spool:{spool.Path}", text, StringComparison.Ordinal);
        Assert.Contains($"\"gw+tag\"@{SpoolScenario.Domain}: 250 2.1.5 accepted", text, StringComparison.Ordinal);
        Assert.Contains($"  headers: X-Original-To: gw+tag@{SpoolScenario.Domain}, Delivered-To: {TestAccounts.Alice}@{SpoolScenario.Domain}", text, StringComparison.Ordinal);
        Assert.Contains($"  mailbox: {spool[TestAccounts.Bob]} (does not exist yet: created 0600 on the first delivery)", text, StringComparison.Ordinal);
        Assert.Contains("  mode:    Legacy (the user's own Mode in Bridge:Users)", text, StringComparison.Ordinal);
        Assert.Contains("  target:  lmtp:[127.0.0.1]:2424", text, StringComparison.Ordinal);
        Assert.Contains($"no-such-user@{SpoolScenario.Domain}: 550 5.1.1 ", text, StringComparison.Ordinal);
        Assert.Contains("x@foreign.example: 554 5.7.1 <x@foreign.example>: Relay access denied", text, StringComparison.Ordinal);
        Assert.Contains("nodomain: 500 5.5.2 ", text, StringComparison.Ordinal);
        Assert.Equal([spool[TestAccounts.Alice]], Directory.GetFiles(spool.Path)); // nothing written
    }

    [Fact]
    public async Task A_mailbox_bridge_would_not_write_is_named_with_the_reason_and_all_accepted_exits_0()
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        SpoolScenario.CreateMailbox(spool[TestAccounts.Alice], SpoolScenario.SampleMbox, 0, 0); // root's, not alice's

        var result = await BridgeProcess.RunToExitAsync(dir, ["resolve", $"{TestAccounts.Alice}@{SpoolScenario.Domain}",
            $"--Bridge:Spool:Directory={spool.Path}", $"--Bridge:LocalDomains:0={SpoolScenario.Domain}"]);

        Assert.True(result.ExitCode == 0, result.Output);
        Assert.Contains($"(a login of the passwd database, uid {alice.Uid})", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"owned by uid 0, not by its user (uid {alice.Uid}): Bridge defers its mail 450 4.2.0", result.Stdout, StringComparison.Ordinal);
    }
}
