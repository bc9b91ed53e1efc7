// Job: a private, real Postfix instance (its own config, queue and log under a temp directory) that relays
// everything to Bridge as its smarthost: relayhost = [127.0.0.1]:<bridge port>, as an admin configures it.
// Failure: a Postfix that does not start fails the test with its log.
namespace Bridge.Tests.Support;

public sealed class PostfixServer : IAsyncDisposable
{
    private readonly TempDir _dir;

    private PostfixServer(TempDir dir, int port)
    {
        _dir = dir;
        SmtpPort = port;
    }

    public int SmtpPort { get; }

    public string ConfigDirectory => _dir["conf"];

    public string LogPath => _dir["maillog"];

    public string Log => File.Exists(LogPath) ? File.ReadAllText(LogPath) : "";

    public static async Task<PostfixServer> StartAsync(int bridgePort)
    {
        Peers.RequireRoot();
        var postfix = Peers.Require("postfix", "postfix");
        var dir = new TempDir("bridge-postfix");
        var conf = dir.CreateSubdirectory("conf");
        dir.CreateSubdirectory("queue");
        var data = dir.CreateSubdirectory("data");
        await Proc.RunAsync("chown", ["postfix", data]);
        File.Copy("/usr/share/postfix/main.cf.debian", Path.Combine(conf, "main.cf"));
        var port = FreePort.Next();
        var master = await File.ReadAllTextAsync("/etc/postfix/master.cf");
        master = master.Replace("\nsmtp      inet", $"\n{port}      inet", StringComparison.Ordinal);
        await File.WriteAllTextAsync(Path.Combine(conf, "master.cf"), master);
        string[] settings =
        [
            $"queue_directory={dir["queue"]}", $"data_directory={data}", "myhostname=mta.test", "mydestination=",
            "inet_interfaces=loopback-only", "inet_protocols=ipv4", "mynetworks=127.0.0.0/8",
            "smtpd_relay_restrictions=permit_mynetworks,reject", "alias_maps=", "alias_database=",
            $"relayhost=[127.0.0.1]:{bridgePort}", $"maillog_file={dir["maillog"]}", "maillog_file_prefixes=/tmp",
            "minimal_backoff_time=2s", "maximal_backoff_time=4s", "queue_run_delay=2s", "compatibility_level=3.6",
            "smtp_connection_cache_on_demand=yes",
        ];
        var postconf = await Proc.RunAsync("postconf", ["-c", conf, "-e", .. settings]);
        if (postconf.ExitCode != 0)
        {
            throw new InvalidOperationException($"postconf failed: {postconf.Output}");
        }
        var rc = await Proc.RunDetachedAsync(postfix, "-c", conf, "start");
        var server = new PostfixServer(dir, port);
        if (rc != 0 || !await DovecotServer.WaitForPortAsync(port))
        {
            var log = server.Log;
            await server.DisposeAsync();
            throw new InvalidOperationException($"postfix did not start (exit {rc}): {log}");
        }
        return server;
    }

    /// <summary>Number of messages still in Postfix's queue.</summary>
    public async Task<int> QueuedAsync()
    {
        var result = await Proc.RunAsync("postqueue", ["-c", ConfigDirectory, "-j"]);
        return result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
    }

    public Task FlushAsync() => Proc.RunAsync("postqueue", ["-c", ConfigDirectory, "-f"]);

    public async ValueTask DisposeAsync()
    {
        await Proc.RunDetachedAsync("postfix", "-c", ConfigDirectory, "stop");
        await Task.Delay(500);
        _dir.Dispose();
    }
}
