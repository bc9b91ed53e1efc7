// Job: a real Exim (unpacked by test.sh: it conflicts with the postfix package) configured with Bridge's
// deploy/exim router and transport (SMTP to the port, or LMTP to the socket), with only the port or path changed; messages are submitted with `exim -odi`.
// Failure: a missing Exim fails the test with the command that provides it.
namespace Bridge.Tests.Support;

public sealed class EximServer : IDisposable
{
    private const string Root = "/var/cache/bridge-test-peers/exim";
    private readonly TempDir _dir;

    private EximServer(TempDir dir) => _dir = dir;

    private static string Binary => Path.Combine(Root, "usr/sbin/exim4");

    public string MainLog => File.Exists(_dir["log/mainlog"]) ? File.ReadAllText(_dir["log/mainlog"]) : "";

    /// <summary>Exim with deploy/exim's router and transport for SMTP to Bridge's port.</summary>
    public static Task<EximServer> CreateAsync(int bridgePort) => CreateAsync("router-bridge.conf", "transport-bridge.conf",
        text => text.Replace("127.0.0.1::627", $"127.0.0.1::{bridgePort}", StringComparison.Ordinal));

    /// <summary>Exim with deploy/exim's LMTP router and transport, the socket path changed to <paramref name="socket"/>.</summary>
    public static Task<EximServer> CreateLmtpAsync(string socket) => CreateAsync("router-bridge-lmtp.conf", "transport-bridge-lmtp.conf",
        text => text.Replace("/run/bridge/lmtp", socket, StringComparison.Ordinal));

    private static async Task<EximServer> CreateAsync(string routerFile, string transportFile, Func<string, string> adapt)
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
        await File.WriteAllTextAsync(dir["router.conf"], adapt(await File.ReadAllTextAsync(Path.Combine(deploy, routerFile))));
        await File.WriteAllTextAsync(dir["transport.conf"], adapt(await File.ReadAllTextAsync(Path.Combine(deploy, transportFile))));
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

    /// <summary>The same for several recipients of one message.</summary>
    public Task<ProcResult> SendAsync(string sender, IReadOnlyList<string> recipients, string message) =>
        Proc.RunAsync(Binary, ["-C", _dir["exim.conf"], "-odi", "-f", sender, .. recipients], stdin: message);

    public void Dispose() => _dir.Dispose();
}
