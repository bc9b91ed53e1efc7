using Bridge.Tests.Support;

namespace Bridge.Tests.Hosting;

/// <summary>The bridge executable as a separate process, started the way an admin starts it.</summary>
public class DaemonStartTests
{
    [Fact]
    public async Task Without_root_binding_627_fails_with_one_line_naming_the_setting()
    {
        Peers.RequireRoot();
        using var dir = new TempDir("bridge-daemon");
        using var state = new TempDir("bridge-state", TempDir.Mode("1777")); // a journal nobody may create: only the port can fail

        var result = await BridgeProcess.RunAsNobodyAsync(dir, $"--Bridge:Spool:Directory={dir.Path}", $"--Bridge:Spool:JournalDirectory={state["journal"]}");

        Assert.Equal(69, result.ExitCode); // EX_UNAVAILABLE: the machine, not the configuration
        var lines = result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(lines);
        Assert.Contains("cannot listen on 127.0.0.1:627", line, StringComparison.Ordinal);
        Assert.Contains("Bridge:Listen:Port", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_setting_stops_the_daemon_with_one_line_naming_the_key()
    {
        using var dir = new TempDir("bridge-daemon");
        await File.WriteAllTextAsync(dir["appsettings.json"], """{ "Bridge": { "Listen": { "Port": 2627 }, "Spool": { "MaxMailboxBytes": -5 } } }""");

        var result = await BridgeProcess.RunToExitAsync(dir);

        Assert.Equal(78, result.ExitCode);
        var line = Assert.Single(result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("Bridge:Spool:MaxMailboxBytes", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Appsettings_json_is_read_from_the_working_directory_and_the_command_line_overrides_it()
    {
        using var dir = new TempDir("bridge-daemon");
        await File.WriteAllTextAsync(dir["appsettings.json"], """{ "Bridge": { "Mode": "Bogus" } }""");

        var fromFile = await BridgeProcess.RunToExitAsync(dir);
        var overridden = await BridgeProcess.RunToExitAsync(dir, "--Bridge:Mode=Spool", "--Bridge:Listen:Port=1", "--Bridge:Listen:Address=192.0.2.1");

        Assert.Contains("'Bogus' at 'Bridge:Mode'", fromFile.Output, StringComparison.Ordinal);
        Assert.Contains("cannot listen on 192.0.2.1:1", overridden.Output, StringComparison.Ordinal);
        Assert.Contains("Bridge:Listen:Address", overridden.Output, StringComparison.Ordinal);
    }



    [Fact]
    public async Task Broken_json_in_appsettings_stops_the_daemon_with_one_line()
    {
        using var dir = new TempDir("bridge-daemon");
        await File.WriteAllTextAsync(dir["appsettings.json"], """{ "Bridge": { "Mode": "Spool" """);

        var result = await BridgeProcess.RunToExitAsync(dir);

        Assert.Equal(78, result.ExitCode);
        var line = Assert.Single(result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("appsettings.json", line, StringComparison.Ordinal);
    }
}
