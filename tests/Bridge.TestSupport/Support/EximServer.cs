// Job: a real Exim (unpacked by test.sh: it conflicts with the postfix package) configured with Bridge's
// deploy/exim router and transport, with only the port changed; messages are submitted with `exim -odi`.
// Failure: a missing Exim fails the test with the command that provides it.
namespace Bridge.Tests.Support;

public sealed class EximServer : IDisposable
{
    private const string Root = "/var/cache/bridge-test-peers/exim";
    private readonly TempDir _dir;

    private EximServer(TempDir dir) => _dir = dir;

    private static string Binary => Path.Combine(Root, "usr/sbin/exim4");

    public string MainLog => File.Exists(_dir["log/mainlog"]) ? File.ReadAllText(_dir["log/mainlog"]) : "";

    public static async Task<EximServer> CreateAsync(int bridgePort)
    {
        Peers.RequireRoot();
        if (!File.Exists(Path.Combine(Root, "usr/sbin/exim4")))
        {
            throw new InvalidOperationException($"Exim is not unpacked in {Root}: run ./test.sh (it fetches exim4-daemon-light with apt-get download)");
        }
        var dir = new TempDir("bridge-exim");
        var spool = dir.CreateSubdirectory("spool");
        var log = dir.CreateSubdirectory("log");
        await Proc.RunAsync("chown", ["-R", "Debian-exim:Debian-exim", spool, log]);
        var deploy = Path.Combine(AppContext.BaseDirectory, "deploy", "exim");
        var router = (await File.ReadAllTextAsync(Path.Combine(deploy, "router-bridge.conf")))
            .Replace("127.0.0.1::627", $"127.0.0.1::{bridgePort}", StringComparison.Ordinal);
        await File.WriteAllTextAsync(dir["router.conf"], router);
        File.Copy(Path.Combine(deploy, "transport-bridge.conf"), dir["transport.conf"]);
        await File.WriteAllTextAsync(dir["exim.conf"], $"""
            exim_path = {Root}/usr/sbin/exim4
            exim_user = Debian-exim
            exim_group = Debian-exim
            keep_environment =
            spool_directory = {spool}
            log_file_path = {log}/%slog
            primary_hostname = exim.test
            begin routers
            .include {dir["router.conf"]}
            begin transports
            .include {dir["transport.conf"]}
            begin retry
            * * F,2h,15m
            """);
        return new EximServer(dir);
    }

    /// <summary>Submits a message and delivers it at once (exim -odi), as a local program would.</summary>
    public Task<ProcResult> SendAsync(string sender, string recipient, string message) =>
        Proc.RunAsync(Binary, ["-C", _dir["exim.conf"], "-odi", "-f", sender, recipient], stdin: message);

    public void Dispose() => _dir.Dispose();
}
