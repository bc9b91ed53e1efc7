// Job: a private, real Postfix instance (its own config, queue and log under a temp directory): either the
// upstream MTA relaying everything to Bridge (relayhost = [127.0.0.1]:<bridge port>, as an admin configures
// it), an SMTP mail store front that hands mail on to Dovecot over LMTP, or (for bench/) the final destination
// delivering with local(8) into mbox files.
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

    /// <summary>The queue directory: lmtp(8) runs chrooted there, so private/ sockets are named relative to it.</summary>
    public string QueueDirectory => _dir["queue"];

    public string Log => File.Exists(LogPath) ? File.ReadAllText(LogPath) : "";

    /// <summary>The pid of this Postfix's master(8) (every other Postfix process is its child): the process named
    /// master that works in this queue directory (pid/master.pid is flock()ed by master, which .NET's reads refuse).</summary>
    public int MasterPid =>
        Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0)
            .FirstOrDefault(pid =>
            {
                try
                {
                    return File.ReadAllText($"/proc/{pid}/comm").Trim() == "master" &&
                        new FileInfo($"/proc/{pid}/cwd").LinkTarget == QueueDirectory;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    return false; // gone meanwhile
                }
            });

    /// <summary>Postfix as the upstream MTA: everything goes to Bridge as its relayhost.</summary>
    /// <param name="port">Postfix's own SMTP port, when the test had to know it before (0: a free one).</param>
    /// <remarks>The relay settings are deploy/postfix/main.cf.snippet, with only the port changed.</remarks>
    public static Task<PostfixServer> StartAsync(int bridgePort, int port = 0) =>
        StartAsync("mta.test", [.. DeploySnippet(bridgePort), "mydestination="], port);

    /// <summary>The same, with more main.cf settings (e.g. virtual_alias_maps).</summary>
    public static Task<PostfixServer> StartAsync(int bridgePort, int port, params string[] settings) =>
        StartAsync("mta.test", [.. DeploySnippet(bridgePort), "mydestination=", .. settings], port);

    /// <summary>The `key = value` lines of deploy/postfix/main.cf.snippet, with Bridge's port put in.</summary>
    private static string[] DeploySnippet(int bridgePort) =>
    [
        .. File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "deploy", "postfix", "main.cf.snippet"))
            .Where(l => l.Contains('=', StringComparison.Ordinal) && !l.TrimStart().StartsWith('#'))
            .Select(l => l.Replace(" = ", "=", StringComparison.Ordinal).Replace("127.0.0.1]:627", $"127.0.0.1]:{bridgePort}", StringComparison.Ordinal).Trim()),
    ];

    /// <summary>Postfix as the MTA in front of Bridge's LMTP socket: mail for <paramref name="domain"/> (a virtual
    /// mailbox domain, any recipient) goes to Bridge through the virtual_transport line of deploy/postfix/main.cf.lmtp,
    /// as one LMTP transaction for all its recipients. Bridge must listen on QueueDirectory/private/bridge-lmtp.</summary>
    public static Task<PostfixServer> StartLmtpClientAsync(string domain, params string[] settings)
    {
        var snippet = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "deploy", "postfix", "main.cf.lmtp"))
            .Where(l => l.StartsWith("virtual_transport", StringComparison.Ordinal))
            .Select(l => l.Replace(" = ", "=", StringComparison.Ordinal).Trim())
            .Single();
        return StartAsync("mta.test", ["relayhost=", "mydestination=", $"virtual_mailbox_domains={domain}", snippet,
            "smtpd_reject_unlisted_recipient=no", .. settings], 0);
    }

    /// <summary>Postfix as the MTA in front of a final delivery (for bench/'s chains): Debian's defaults plus exactly
    /// <paramref name="settings"/> (relayhost, mydestination and the transport are the caller's).</summary>
    public static Task<PostfixServer> StartWithAsync(string hostName, params string[] settings) => StartAsync(hostName, settings, 0);

    /// <summary>The `key = value` lines of deploy/postfix/main.cf.snippet (relay everything to Bridge on <paramref name="bridgePort"/>).</summary>
    public static IReadOnlyList<string> RelayToBridge(int bridgePort) => DeploySnippet(bridgePort);

    /// <summary>Postfix as an SMTP mail store front: mail for <paramref name="domain"/> goes on over LMTP to Dovecot.</summary>
    public static Task<PostfixServer> StartStoreFrontAsync(string domain, int lmtpPort, int port = 0, params string[] settings) =>
        StartAsync("front.test", ["relayhost=", $"mydestination={domain}", $"local_transport=lmtp:inet:127.0.0.1:{lmtpPort}",
            "local_recipient_maps=", .. settings], port);

    /// <summary>Postfix as the final destination: smtpd -> cleanup -> qmgr -> local(8), which appends mail for the
    /// accounts of <paramref name="domain"/> to <paramref name="spoolDirectory"/>/login (Postfix's own mbox delivery,
    /// the benchmark's yardstick for spool mode).</summary>
    public static Task<PostfixServer> StartLocalDeliveryAsync(string domain, string spoolDirectory) =>
        StartAsync("local.test", ["relayhost=", $"mydestination={domain}", $"mail_spool_directory={spoolDirectory}",
            "home_mailbox=", "mailbox_command=", "local_transport=local"], 0);

    /// <summary>master.cf as the postfix package ships it, whatever the host's /etc/postfix/master.cf says.</summary>
    private const string StockMasterCf = "/usr/share/postfix/master.cf.dist";

    private static async Task<PostfixServer> StartAsync(string hostName, string[] roleSettings, int port)
    {
        Peers.RequireRoot();
        var postfix = Peers.Require("postfix", "postfix");
        var dir = new TempDir("bridge-postfix");
        var conf = dir.CreateSubdirectory("conf");
        dir.CreateSubdirectory("queue");
        var data = dir.CreateSubdirectory("data");
        await Proc.RunAsync("chown", ["postfix", data]);
        File.Copy("/usr/share/postfix/main.cf.debian", Path.Combine(conf, "main.cf"));
        port = port == 0 ? FreePort.Next() : port;
        // The package's pristine master.cf, not the host's /etc/postfix/master.cf (which may run postscreen on port 25
        // or be edited otherwise): its stock "smtp inet ... smtpd" line becomes smtpd on this instance's port.
        var stock = await File.ReadAllTextAsync(StockMasterCf);
        var master = stock.Replace("\nsmtp      inet", $"\n{port}      inet", StringComparison.Ordinal);
        if (master == stock)
        {
            throw new InvalidOperationException($"{StockMasterCf} has no \"smtp      inet\" line to give this Postfix its port {port}");
        }
        await File.WriteAllTextAsync(Path.Combine(conf, "master.cf"), master);
        string[] settings =
        [
            $"queue_directory={dir["queue"]}", $"data_directory={data}", $"myhostname={hostName}",
            "inet_interfaces=loopback-only", "inet_protocols=ipv4", "mynetworks=127.0.0.0/8",
            "smtpd_relay_restrictions=permit_mynetworks,reject", "alias_maps=", "alias_database=",
            $"maillog_file={dir["maillog"]}", "maillog_file_prefixes=/tmp",
            "minimal_backoff_time=2s", "maximal_backoff_time=4s", "queue_run_delay=2s", "compatibility_level=3.6",
            "smtp_connection_cache_on_demand=yes",
            .. roleSettings,
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

    /// <summary>What `postqueue -p` shows: each queued message with its recipients and why each waits.</summary>
    public async Task<string> QueueListingAsync() => (await Proc.RunAsync("postqueue", ["-c", ConfigDirectory, "-p"])).Stdout;

    public Task FlushAsync() => Proc.RunAsync("postqueue", ["-c", ConfigDirectory, "-f"]);

    private int _disposed;

    /// <summary>Stops this Postfix and removes its folder; a second call does nothing.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await Proc.RunDetachedAsync("postfix", "-c", ConfigDirectory, "stop");
        await Task.Delay(500);
        _dir.Dispose();
    }
}
