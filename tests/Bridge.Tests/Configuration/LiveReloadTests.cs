using Bridge.Tests.Support;

namespace Bridge.Tests.Configuration;

/// <summary>appsettings.json edits reach the running daemon without a restart; invalid edits are ignored.</summary>
public class LiveReloadTests
{
    private static string Settings(string users) => $$"""
        { "Bridge": { "LocalDomains": [ "{{SpoolScenario.Domain}}" ], "UseSystemAccounts": false, "Users": [ {{users}} ] } }
        """;

    [Fact]
    public async Task A_user_added_to_appsettings_json_is_accepted_by_the_next_transaction_and_a_bad_edit_is_ignored()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        using var root = new TempDir("bridge-root");
        var file = root["appsettings.json"];
        await File.WriteAllTextAsync(file, Settings("""{ "ShortNames": [ "bridgetest1" ] }"""));
        await using var bridge = await BridgeServer.StartAsync(spool.Path, root.Path);
        var to = $"newname@{SpoolScenario.Domain}";

        Assert.StartsWith("550 5.1.1", (await Swaks.SendAsync(bridge.Port, to)).FinalReply, StringComparison.Ordinal);

        await File.WriteAllTextAsync(file, Settings("""{ "ShortNames": [ "bridgetest1", "newname" ] }"""));
        await Eventually.WaitAsync(async () => (await Swaks.SendAsync(bridge.Port, to, extra: ["--quit-after", "RCPT"])).FinalReply.StartsWith("250", StringComparison.Ordinal), 10);
        Assert.StartsWith("250 2.0.0 Ok: queued", (await Swaks.SendAsync(bridge.Port, to)).FinalReply, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(spool.Path, TestAccounts.Alice)));

        await File.WriteAllTextAsync(file, Settings("""{ "ShortNames": [ "../etc" ] }"""));
        await Eventually.WaitAsync(() => bridge.Logs.Lines.Any(l => l.Contains("Configuration change ignored", StringComparison.Ordinal)
                                                                           && l.Contains("Bridge:Users[0]:ShortNames[0]", StringComparison.Ordinal)), 10);
        Assert.StartsWith("250 ", (await Swaks.SendAsync(bridge.Port, to)).FinalReply, StringComparison.Ordinal);
    }
}
