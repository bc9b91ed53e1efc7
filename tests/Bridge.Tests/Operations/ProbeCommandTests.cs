using Bridge.Tests.Support;

namespace Bridge.Tests.Operations;

/// <summary>`bridge probe` run as the executable an admin runs, through a real Postfix into the spool and into a
/// Dovecot store, and failing at each hop: the MTA, Bridge, the store, and an address Bridge refuses.</summary>
public class ProbeCommandTests
{
    private const string Alice = "bridgetest1@" + SpoolScenario.Domain;

    /// <summary>The probe with the same settings the running Bridge has (spool, users, port, mode).</summary>
    private static async Task<ProcResult> ProbeAsync(SpoolScenario s, PostfixServer? postfix, string via, params string[] extra)
    {
        using var dir = new TempDir("bridge-probe");
        string[] settings =
        [
            "probe", Alice, "--via", via, "--wait", "15", $"--Bridge:Listen:Port={s.Port}", $"--Bridge:Spool:Directory={s.Spool.Path}",
            $"--Bridge:Spool:JournalDirectory={s.Root["journal"]}", $"--Bridge:LocalDomains:0={SpoolScenario.Domain}", .. extra,
        ];
        return await BridgeProcess.RunToExitAsync(dir, postfix is null ? null : new Dictionary<string, string> { ["MAIL_CONFIG"] = postfix.ConfigDirectory }, settings);
    }

    [Fact]
    public async Task Through_a_real_postfix_into_the_spool_each_hop_is_shown_and_the_probe_removed()
    {
        await using var s = await SpoolScenario.StartAsync();
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);
        await using var postfix = await PostfixServer.StartAsync(s.Port);

        var result = await ProbeAsync(s, postfix, $"127.0.0.1:{postfix.SmtpPort}");

        Assert.True(result.ExitCode == 0, result.Output);
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches($@"^OK +[0-9.]+s mta \[127\.0\.0\.1\]:{postfix.SmtpPort}: accepted <bridge-probe-[0-9a-f]+@bridge\.localhost> \(250 2\.0\.0 Ok: queued as ", lines[0]);
        Assert.Matches($@"^OK +[0-9.]+s bridge: received as [0-9A-F]{{16}}, written to {s.AliceMailbox} at offset {SpoolScenario.SampleMbox.Length}$", lines[1]);
        Assert.Matches($@"^OK +[0-9.]+s probe: removed from {s.AliceMailbox}$", lines[2]);
        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.AliceMailbox));
    }

    [Fact]
    public async Task Straight_to_bridge_with_keep_the_probe_stays()
    {
        await using var s = await SpoolScenario.StartAsync();

        var result = await ProbeAsync(s, null, $"127.0.0.1:{s.Port}", "--keep");

        Assert.True(result.ExitCode == 0, result.Output);
        Assert.Contains($"bridge [127.0.0.1]:{s.Port}: accepted", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("X-Bridge-Probe", Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).BodyText + File.ReadAllText(s.AliceMailbox), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Through_a_real_postfix_into_a_dovecot_store()
    {
        await using var s = await LegacyScenario.StartAsync();
        await using var postfix = await PostfixServer.StartAsync(s.Port);

        var result = await ProbeAsync(s.Bridge, postfix, $"127.0.0.1:{postfix.SmtpPort}", "--Bridge:Mode=Legacy", "--Bridge:Legacy:Host=127.0.0.1",
            $"--Bridge:Legacy:Port={s.LmtpPort}");

        Assert.True(result.ExitCode == 0, result.Output);
        Assert.Contains($"bridge -> store lmtp:[127.0.0.1]:{s.LmtpPort}: the probe left the MTA's queue", result.Stdout, StringComparison.Ordinal);
        var stored = Assert.Single(await s.InboxAsync(TestAccounts.Alice));
        Assert.Contains("X-Bridge-Probe:", System.Text.Encoding.ASCII.GetString(stored), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dead_mta_fails_at_the_first_hop()
    {
        await using var s = await SpoolScenario.StartAsync();

        var result = await ProbeAsync(s, null, $"127.0.0.1:{FreePort.Next()}");

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("FAIL mta [127.0.0.1]:", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("Connection refused", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dead_bridge_shows_the_mtas_deferral_reason()
    {
        await using var s = await SpoolScenario.StartAsync();
        var deadBridge = FreePort.Next();
        await using var postfix = await PostfixServer.StartAsync(deadBridge);

        var result = await ProbeAsync(s, postfix, $"127.0.0.1:{postfix.SmtpPort}");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("OK ", result.Stdout, StringComparison.Ordinal); // the MTA took it
        Assert.Contains("FAIL", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"the MTA holds it: connect to 127.0.0.1[127.0.0.1]:{deadBridge}: Connection refused", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dead_store_shows_bridges_451_as_the_mtas_deferral_reason()
    {
        await using var s = await LegacyScenario.StartAsync(storeUp: false, "Bridge:Retry:MaxAttempts=2", "Bridge:Retry:Budget=00:00:02");
        await using var postfix = await PostfixServer.StartAsync(s.Port);

        var result = await ProbeAsync(s.Bridge, postfix, $"127.0.0.1:{postfix.SmtpPort}", "--Bridge:Mode=Legacy", "--Bridge:Legacy:Host=127.0.0.1",
            $"--Bridge:Legacy:Port={s.LmtpPort}");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("FAIL", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("4.4.1", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_address_bridge_refuses_is_named_and_nothing_is_sent()
    {
        await using var s = await SpoolScenario.StartAsync();

        var result = await ProbeAsync(s, null, $"127.0.0.1:{s.Port}", "--Bridge:UseSystemAccounts=false");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"FAIL bridge: {Alice}: 550 5.1.1 ", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("(nothing was sent)", result.Stdout, StringComparison.Ordinal);
        Assert.False(File.Exists(s.AliceMailbox));
    }
}
