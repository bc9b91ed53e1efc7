using Bridge.Tests.Support;

namespace Bridge.Tests.Configuration;

/// <summary>SIGHUP reloads appsettings.json in a running daemon (file watching switched off to prove it is the signal).</summary>
public class SighupReloadTests
{
    private const int Sighup = 1;

    [Fact]
    public async Task Sighup_makes_the_running_daemon_take_the_edited_mode()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var port = FreePort.Next();
        string Settings(string mode) => $$"""
            { "Bridge": { "Mode": "{{mode}}", "Listen": { "Port": {{port}} }, "LocalDomains": [ "{{SpoolScenario.Domain}}" ],
              "Spool": { "Directory": "{{spool.Path}}" },
              "Legacy": { "Host": "127.0.0.1", "Port": {{store.LmtpPort}}, "Protocol": "Lmtp" } } }
            """;
        await File.WriteAllTextAsync(dir["appsettings.json"], Settings("Spool"));
        await using var bridge = await BridgeProcess.StartAsync(dir,
            new Dictionary<string, string> { ["DOTNET_hostBuilder__reloadConfigOnChange"] = "false" });
        var to = $"{TestAccounts.Alice}@{SpoolScenario.Domain}";

        await File.WriteAllTextAsync(dir["appsettings.json"], Settings("Legacy"));
        await Task.Delay(1500);
        Assert.StartsWith("250 ", (await Swaks.SendAsync(port, to)).FinalReply, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(spool.Path, TestAccounts.Alice)), "without SIGHUP the old mode (Spool) stays in force");

        bridge.Signal(Sighup);
        await bridge.WaitForLineAsync("Bridge:Mode changed from Spool to Legacy", TimeSpan.FromSeconds(10));
        Assert.StartsWith("250 ", (await Swaks.SendAsync(port, to)).FinalReply, StringComparison.Ordinal);

        Assert.Single(await store.FetchInboxAsync(TestAccounts.Alice));
        Assert.Contains(bridge.Lines, l => l.Contains("SIGHUP received", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_reload_keeps_the_last_good_reading_of_the_alias_files_when_they_cannot_be_read_now()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var port = FreePort.Next();
        await File.WriteAllTextAsync(dir["aliases"], $"team: {TestAccounts.Alice}\n");
        await File.WriteAllTextAsync(dir["appsettings.json"], $$"""
            { "Bridge": { "Listen": { "Port": {{port}} }, "LocalDomains": [ "{{SpoolScenario.Domain}}" ], "AliasFiles": [ "{{dir["aliases"]}}" ],
              "Spool": { "Directory": "{{spool.Path}}" } } }
            """);
        await using var bridge = await BridgeProcess.StartAsync(dir, null);
        Assert.StartsWith("250 ", (await Swaks.SendAsync(port, $"team@{SpoolScenario.Domain}")).FinalReply, StringComparison.Ordinal);

        File.SetUnixFileMode(dir["aliases"], TempDir.Mode("666")); // no longer usable: others may write it
        await bridge.WaitForLineAsync("the aliases read before stay in force", TimeSpan.FromSeconds(10));
        bridge.Signal(Sighup);
        await bridge.WaitForLineAsync("SIGHUP received", TimeSpan.FromSeconds(10));
        await Task.Delay(500);

        Assert.StartsWith("250 ", (await Swaks.SendAsync(port, $"team@{SpoolScenario.Domain}")).FinalReply, StringComparison.Ordinal);
        Assert.StartsWith("250 ", (await Swaks.SendAsync(port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}")).FinalReply, StringComparison.Ordinal);
        Assert.Equal(3, (await MboxReaders.PythonMailboxAsync(spool[TestAccounts.Alice])).Count);
    }
}
