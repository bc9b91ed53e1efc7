using Bridge.Tests.Support;

namespace Bridge.Tests.Operations;

/// <summary>`bridge check --exim BINARY --exim-config FILE` reading a real Exim's configuration with `exim -bP`
/// (the Exim test.sh unpacks; nothing is started): the deploy router and transport pass; each mistake is named.</summary>
public class EximCheckTests
{
    private const string Exim = "/var/cache/bridge-test-peers/exim/usr/sbin/exim4";

    /// <summary>An Exim configuration with deploy/exim's router (Bridge's port put in) and transport, as an admin
    /// includes them, changed by <paramref name="edit"/>; then `mailbridge check` on it.</summary>
    private static async Task<(string[] Lines, int ExitCode)> CheckAsync(Func<string, string> edit, params string[] settings)
    {
        Peers.RequireRoot();
        Assert.True(File.Exists(Exim), $"Exim is not unpacked at {Exim}: run ./test.sh (it fetches exim4-daemon-light with apt-get download)");
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var port = FreePort.Next();
        var deploy = Path.Combine(AppContext.BaseDirectory, "deploy", "exim");
        var router = (await File.ReadAllTextAsync(Path.Combine(deploy, "router-bridge.conf"))).Replace("127.0.0.1::627", $"127.0.0.1::{port}", StringComparison.Ordinal);
        var transport = await File.ReadAllTextAsync(Path.Combine(deploy, "transport-bridge.conf"));
        var config = dir["exim.conf"];
        await File.WriteAllTextAsync(config, edit($"""
            exim_path = {Exim}
            exim_user = Debian-exim
            exim_group = Debian-exim
            keep_environment =
            spool_directory = {dir.Path}/spool
            primary_hostname = exim.test
            domainlist local_domains = exim.test : {SpoolScenario.Domain}
            begin routers
            {router}
            begin transports
            {transport}
            local_delivery:
              driver = appendfile
              file = /dev/null
            """));
        var result = await BridgeProcess.RunToExitAsync(dir, ["check", "--exim", Exim, "--exim-config", config, "--dovecot-config", DoveconfFile.Write(dir, spool.Path),
            $"--Bridge:Spool:Directory={spool.Path}", $"--Bridge:Spool:JournalDirectory={dir["journal"]}", $"--Bridge:Listen:Port={port}",
            $"--Bridge:LocalDomains:0={SpoolScenario.Domain}", .. settings]);
        return ([.. result.Stdout.Split('\n').Where(l => l.Contains(" exim ", StringComparison.Ordinal))], result.ExitCode);
    }

    [Fact]
    public async Task The_deploy_router_and_transport_pass()
    {
        var (lines, _) = await CheckAsync(c => c, "--Bridge:MaxMessageBytes=52428800"); // Exim's default message_size_limit is 50M

        Assert.Equal(3, lines.Length);
        Assert.All(lines, l => Assert.StartsWith("OK ", l, StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("router bridge sends mail to Bridge", StringComparison.Ordinal) && l.Contains("comes first", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("transport bridge_smtp: max_rcpt = 1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_router_to_another_port_is_a_fail()
    {
        var (lines, exit) = await CheckAsync(c => c.Replace("127.0.0.1::", "127.0.0.1::1", StringComparison.Ordinal), "--Bridge:MaxMessageBytes=52428800");

        Assert.Contains(lines, l => l.StartsWith("FAIL ", StringComparison.Ordinal) && l.Contains("no manualroute router sends mail to Bridge's listener", StringComparison.Ordinal)
                                    && l.Contains("-- fix: add /usr/share/doc/bridge/examples/exim/router-bridge.conf", StringComparison.Ordinal));
        Assert.Equal(1, exit);
    }

    [Fact]
    public async Task A_router_before_bridges_is_a_warning_naming_it()
    {
        var (lines, _) = await CheckAsync(c => c.Replace("begin routers\n", "begin routers\nlocaluser:\n  driver = accept\n  domains = +local_domains\n  transport = local_delivery\n",
            StringComparison.Ordinal), "--Bridge:MaxMessageBytes=52428800");

        Assert.Contains(lines, l => l.StartsWith("WARN ", StringComparison.Ordinal) && l.Contains("router bridge sends mail to Bridge but comes after localuser", StringComparison.Ordinal)
                                    && l.Contains("-- fix: put router bridge first", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Many_recipients_per_transaction_is_a_warning()
    {
        var (lines, _) = await CheckAsync(c => c.Replace("  max_rcpt = 1\n", "", StringComparison.Ordinal), "--Bridge:MaxMessageBytes=52428800");

        Assert.Contains(lines, l => l.StartsWith("WARN ", StringComparison.Ordinal) && l.Contains("transport bridge_smtp: max_rcpt = 100", StringComparison.Ordinal)
                                    && l.Contains("-- fix: max_rcpt = 1 in transport bridge_smtp", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_message_size_limit_above_bridges_is_a_fail()
    {
        var (lines, exit) = await CheckAsync(c => c, "--Bridge:MaxMessageBytes=10240000");

        Assert.Contains(lines, l => l.StartsWith("FAIL ", StringComparison.Ordinal) && l.Contains("message_size_limit = 52428800 is above Bridge:MaxMessageBytes = 10240000", StringComparison.Ordinal));
        Assert.Equal(1, exit);
    }
}
