// Job: the standard spool-mode setup of the integration tests: a 1777 spool directory (as Mac OS X Server
// recommends), two real accounts with several short names, one local domain, and a running Bridge.
//   bridgetest1: short names bridgetest1, alice, alice@afp548.test
//   bridgetest2: short names bridgetest2, bob
// Failure: any missing peer or start problem fails the test with its cause.
using Bridge.Native;

namespace Bridge.Tests.Support;

public sealed class SpoolScenario : IAsyncDisposable
{
    public const string Domain = "afp548.test";

    private SpoolScenario(TempDir spool, TempDir root, BridgeServer bridge, (uint, uint) alice, (uint, uint) bob)
    {
        Spool = spool;
        Root = root;
        Bridge = bridge;
        AliceIds = alice;
        BobIds = bob;
    }

    public TempDir Spool { get; }

    public TempDir Root { get; }

    public BridgeServer Bridge { get; }

    public (uint Uid, uint Gid) AliceIds { get; }

    public (uint Uid, uint Gid) BobIds { get; }

    public string AliceMailbox => Spool[TestAccounts.Alice];

    public string BobMailbox => Spool[TestAccounts.Bob];

    public int Port => Bridge.Port;

    public static Task<SpoolScenario> StartAsync(params string[] settings) => StartWithSettingsFileAsync(null, settings);

    /// <param name="appsettingsJson">Written to the daemon's working directory before it starts (for reload tests).</param>
    public static async Task<SpoolScenario> StartWithSettingsFileAsync(string? appsettingsJson, params string[] settings)
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        var bob = await TestAccounts.EnsureAsync(TestAccounts.Bob);
        var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var root = new TempDir("bridge-root");
        if (appsettingsJson is not null)
        {
            await File.WriteAllTextAsync(root["appsettings.json"], appsettingsJson);
        }
        string[] standard =
        [
            $"Bridge:LocalDomains:0={Domain}",
            $"Bridge:Users:0:ShortNames:0={TestAccounts.Alice}", "Bridge:Users:0:ShortNames:1=alice", $"Bridge:Users:0:ShortNames:2=alice@{Domain}",
            $"Bridge:Users:1:ShortNames:0={TestAccounts.Bob}", "Bridge:Users:1:ShortNames:1=bob",
        ];
        var bridge = await BridgeServer.StartAsync(spool.Path, root.Path, [.. standard, .. settings]);
        return new SpoolScenario(spool, root, bridge, alice, bob);
    }

    /// <summary>Creates a mailbox with content and owner, as if earlier deliveries had written it.</summary>
    public static void CreateMailbox(string path, byte[] content, uint uid, uint gid)
    {
        File.WriteAllBytes(path, content);
        File.SetUnixFileMode(path, TempDir.Mode("600"));
        var fd = Libc.Open(path, Libc.O_WRONLY | Libc.O_CLOEXEC, 0);
        Assert.True(fd >= 0);
        Assert.Equal(0, Libc.Fchown(fd, uid, gid));
        Libc.Close(fd);
    }

    public static byte[] SampleMbox => "From old@example.org  Mon Nov 23 10:00:00 2026\nSubject: earlier\n\nearlier body\n\n"u8.ToArray();

    private bool _disposed;

    /// <summary>Stops Bridge and removes the directories; a second call does nothing (a test may stop Bridge early).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        await Bridge.DisposeAsync();
        Spool.Dispose();
        Root.Dispose();
    }
}
