// Job: everything the soak runs against, started once: a spool on a small tmpfs of its own (so it can be filled), a
// real Dovecot as the store (LMTP in, Maildir, IMAP logins that collect through the shipped post-login client), a
// second Dovecot reading the spool's mboxes over IMAP (the reader that expunges), Bridge as its own process (Legacy
// with FallbackToSpool and collection after it, one user in Spool mode, one moved between modes by reloads, an
// alias of all three, the LMTP socket and the collect socket), and two Postfix fronts: one relaying over SMTP to
// Bridge's TCP port (deploy/postfix/main.cf.snippet), one over LMTP to its socket (main.cf.lmtp).
// Failure: a peer that is missing or does not start throws with its cause; DisposeAsync stops and removes it all.
using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Soak;

internal sealed class SoakWorld : IAsyncDisposable
{
    public const string Domain = "soak.test";
    public static readonly string[] Users = [TestAccounts.Alice, TestAccounts.Bob, TestAccounts.Carol];

    /// <summary>Legacy (the default mode, with fallback); Spool by ModeOverride; moved between the two by reloads.</summary>
    public static string LegacyUser => TestAccounts.Alice;

    public static string SpoolUser => TestAccounts.Bob;

    public static string MovingUser => TestAccounts.Carol;

    public const string Alias = "team";

    private readonly List<IAsyncDisposable> _owned = [];
    private readonly List<IDisposable> _dirs = [];
    private readonly Lock _gate = new();
    private readonly List<string> _bridgeLines = [];

    public required TempDir Root { get; init; }
    public required string Spool { get; init; }
    public required string Journal { get; init; }
    public required TempDir BridgeDirectory { get; init; }
    public required DovecotServer Store { get; init; }
    public required DovecotServer Reader { get; init; }
    public required PostfixServer SmtpFront { get; init; }
    public required PostfixServer LmtpFront { get; init; }
    public required int BridgePort { get; init; }
    public required string LmtpSocket { get; init; }
    public required string CollectSocket { get; init; }
    public BridgeProcess? Bridge { get; private set; }
    public bool MovingUserInSpool { get; private set; } = true;

    /// <summary>Every line every Bridge instance of the run wrote (each instance's lines once it is replaced).</summary>
    public IReadOnlyList<string> BridgeLines
    {
        get
        {
            lock (_gate)
            {
                return [.. _bridgeLines, .. Bridge?.Lines ?? []];
            }
        }
    }

    public string MailboxOf(string user) => Path.Combine(Spool, user);

    public static async Task<SoakWorld> StartAsync(long spoolBytes)
    {
        Peers.RequireRoot();
        foreach (var user in Users)
        {
            await TestAccounts.EnsureAsync(user);
        }
        var root = new TempDir("bridge-soak", TempDir.Mode("755"));
        var spool = root.CreateSubdirectory("spool", "1777");
        var mount = await Proc.RunAsync("mount", ["-t", "tmpfs", "-o", $"size={spoolBytes},mode=1777", "bridge-soak", spool]);
        if (mount.ExitCode != 0)
        {
            throw new InvalidOperationException($"cannot mount the soak's tmpfs spool: {mount.Output}");
        }
        var journal = root.CreateSubdirectory("journal", "700");
        var bridgeDir = new TempDir("bridge-soak-daemon");
        BridgeProcess.CopyDaemon(bridgeDir);

        var client = await DovecotCollectClient.ScriptAsync(root, root["collect"]);
        var store = await DovecotServer.StartStoreWithLoginCollectAsync(client, [], Users);
        var reader = await DovecotServer.StartMboxReaderAsync(spool, Users);
        var lmtpFront = await PostfixServer.StartLmtpClientAsync(Domain);
        var port = FreePort.Next();
        var smtpFront = await PostfixServer.StartAsync(port);
        var world = new SoakWorld
        {
            Root = root,
            Spool = spool,
            Journal = journal,
            BridgeDirectory = bridgeDir,
            Store = store,
            Reader = reader,
            SmtpFront = smtpFront,
            LmtpFront = lmtpFront,
            BridgePort = port,
            LmtpSocket = Path.Combine(lmtpFront.QueueDirectory, "private", "bridge-lmtp"),
            CollectSocket = root["collect"],
        };
        world._owned.AddRange([smtpFront, lmtpFront, reader, store]);
        world._dirs.Add(bridgeDir);
        await File.WriteAllTextAsync(root["aliases"], $"{Alias}: {string.Join(", ", Users)}\n");
        await world.WriteSettingsAsync(movingUserInSpool: true);
        await world.StartBridgeAsync();
        return world;
    }

    /// <summary>appsettings.json for Bridge (read at start and again on every change: a reload).</summary>
    public async Task WriteSettingsAsync(bool movingUserInSpool)
    {
        MovingUserInSpool = movingUserInSpool;
        var json = $$"""
            {
              "Logging": { "LogLevel": { "Default": "Information", "Microsoft.Hosting.Lifetime": "Warning" } },
              "Bridge": {
                "Listen": { "Port": {{BridgePort}} },
                "Lmtp": { "Socket": "{{LmtpSocket}}", "SocketGroup": "postfix" },
                "Collect": { "Socket": "{{CollectSocket}}" },
                "Mode": "Legacy",
                "Legacy": { "Host": "127.0.0.1", "Port": {{Store.LmtpPort}}, "Protocol": "Lmtp", "FallbackToSpool": true,
                            "CollectAfterFallback": true, "LoginCollectTimeout": "00:00:05" },
                "LocalDomains": [ "{{Domain}}" ],
                "AliasFiles": [ "{{Root["aliases"]}}" ],
                "Users": [
                  { "ShortNames": [ "{{LegacyUser}}" ] },
                  { "ShortNames": [ "{{SpoolUser}}" ], "Mode": "Spool" },
                  { "ShortNames": [ "{{MovingUser}}" ], "Mode": "{{(movingUserInSpool ? "Spool" : "Legacy")}}" }
                ],
                "Spool": { "Directory": "{{Spool}}", "JournalDirectory": "{{Journal}}" }
              }
            }
            """;
        var temp = BridgeDirectory["appsettings.json.new"];
        await File.WriteAllTextAsync(temp, json, Encoding.UTF8);
        File.Move(temp, BridgeDirectory["appsettings.json"], overwrite: true);
    }

    public async Task StartBridgeAsync()
    {
        var bridge = await BridgeProcess.StartAsync(BridgeDirectory, null);
        lock (_gate)
        {
            Bridge = bridge;
        }
    }

    /// <summary>SIGKILL, as a crash or the OOM killer would; the lines it wrote are kept.</summary>
    public async Task KillBridgeAsync()
    {
        BridgeProcess? bridge;
        lock (_gate)
        {
            bridge = Bridge;
            Bridge = null;
            if (bridge is not null)
            {
                _bridgeLines.AddRange(bridge.Lines);
            }
        }
        if (bridge is not null)
        {
            if (!bridge.HasExited)
            {
                _ = global::Bridge.Native.Libc.Kill(bridge.Pid, 9);
            }
            await bridge.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillBridgeAsync();
        foreach (var owned in _owned)
        {
            try
            {
                await owned.DisposeAsync();
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                Console.Error.WriteLine($"soak: cleanup: {e.Message}");
            }
        }
        await Proc.RunAsync("umount", ["-l", Spool]);
        foreach (var dir in _dirs)
        {
            dir.Dispose();
        }
        Root.Dispose();
    }
}
