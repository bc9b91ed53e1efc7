// Job: a real Bridge daemon inside the test process, on a free loopback port, delivering into a private
// spool directory; configured exactly as an admin would, through Bridge:* settings.
// Failure: a configuration or bind error fails the test with Bridge's own message.
using Bridge.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bridge.Tests.Support;

public sealed class BridgeServer : IAsyncDisposable
{
    private readonly IHost _host;

    private BridgeServer(IHost host, int port, string spool, string contentRoot, LogCapture logs)
    {
        _host = host;
        Port = port;
        SpoolDirectory = spool;
        ContentRoot = contentRoot;
        Logs = logs;
    }

    public int Port { get; }

    public string SpoolDirectory { get; }

    public string ContentRoot { get; }

    public LogCapture Logs { get; }

    public string Mailbox(string shortName) => Path.Combine(SpoolDirectory, shortName);

    /// <param name="settings">Bridge settings as "key=value" pairs, e.g. "Bridge:LocalDomains:0=example.com".</param>
    public static async Task<BridgeServer> StartAsync(string spoolDirectory, string contentRoot, params string[] settings)
    {
        Peers.RequireRoot();
        var port = FreePort.Next();
        var args = new List<string>
        {
            $"--Bridge:Listen:Port={port}",
            $"--Bridge:Spool:Directory={spoolDirectory}",
            $"--Bridge:Spool:JournalDirectory={Path.Combine(contentRoot, "journal")}",
            "--Bridge:Collect:Socket=", // never the machine's /run/bridge/collect; a test that wants one names its own
        };
        args.AddRange(settings.Select(s => "--" + s));
        var logs = new LogCapture();
        var (host, error) = BridgeHost.Build([.. args], contentRoot, builder =>
        {
            builder.Logging.ClearProviders();
            builder.Logging.AddProvider(logs);
        });
        if (host is null)
        {
            throw new InvalidOperationException(error?.Message);
        }
        await host.StartAsync();
        return new BridgeServer(host, port, spoolDirectory, contentRoot, logs);
    }

    public T Service<T>() where T : notnull => _host.Services.GetRequiredService<T>();

    public async ValueTask DisposeAsync()
    {
        // BRIDGE_TEST_LOG_DIR=/some/dir keeps every test Bridge's log lines for debugging.
        if (Environment.GetEnvironmentVariable("BRIDGE_TEST_LOG_DIR") is { Length: > 0 } logDirectory)
        {
            Directory.CreateDirectory(logDirectory);
            await File.WriteAllLinesAsync(Path.Combine(logDirectory, $"bridge-{Port}.log"), Logs.Lines);
        }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _host.StopAsync(cts.Token);
        _host.Dispose();
    }
}
