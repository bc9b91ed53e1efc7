// Job: the daemon under attack, as its own process (the built mailbridge.dll, as an administrator runs it), on a free
// loopback port with a 1777 spool (any local user can create names there, as in Mac OS X Server's /var/mail): as root,
// or as the systemd unit runs it (user bridge, group mail, exactly the unit's ambient capabilities).
// Failure: a daemon that does not start fails the test with its output.
using Bridge.Tests.Support;

namespace Bridge.SecurityTests;

public enum RunAs
{
    Root,

    /// <summary>As deploy/systemd/bridge.service: User=bridge, Group=mail, its AmbientCapabilities.</summary>
    Unit,

    /// <summary>As an older or edited unit would: the unit's capabilities but CAP_SETUID and CAP_SETGID.</summary>
    UnitWithoutSetId,
}

public sealed class Daemon : IAsyncDisposable
{
    public const string Domain = "afp548.test";

    /// <summary>The unit's AmbientCapabilities (deploy/systemd/bridge.service), in setpriv's spelling.</summary>
    public const string UnitCapabilities = "+net_bind_service,+chown,+dac_override,+fowner,+setuid,+setgid";

    private Daemon(TempDir work, TempDir spool, TempDir state, int port, BridgeProcess process)
    {
        Work = work;
        Spool = spool;
        State = state;
        Port = port;
        Process = process;
    }

    public TempDir Work { get; }

    public TempDir Spool { get; }

    public TempDir State { get; }

    public int Port { get; }

    public BridgeProcess Process { get; }

    /// <summary>Everything the daemon logged so far.</summary>
    public string Log => string.Join('\n', Process.Lines);

    /// <summary>The settings every daemon here gets (port, spool, journal, domain) and then <paramref name="settings"/>.</summary>
    public static string[] Arguments(TempDir spool, TempDir state, int port, IEnumerable<string> settings) =>
    [
        $"--Bridge:Listen:Port={port}", $"--Bridge:Spool:Directory={spool.Path}", $"--Bridge:Spool:JournalDirectory={state["journal"]}",
        $"--Bridge:LocalDomains:0={Domain}", .. settings.Select(s => "--" + s),
    ];

    public static async Task<Daemon> StartAsync(RunAs runAs, params string[] settings)
    {
        Peers.RequireRoot();
        Peers.Require("setpriv", "util-linux");
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        await TestAccounts.EnsureAsync(TestAccounts.Bob);
        var work = new TempDir("bridge-daemon", TempDir.Mode("755"));
        var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var state = new TempDir("bridge-state", TempDir.Mode("700"));
        BridgeProcess.CopyDaemon(work);
        await File.WriteAllTextAsync(work["appsettings.json"], "{}"); // never the machine's /etc/bridge/appsettings.json
        var port = FreePort.Next();
        var args = Arguments(spool, state, port, settings);
        var environment = new Dictionary<string, string> { ["HOME"] = state.Path, ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" };
        try
        {
            BridgeProcess process;
            if (runAs is RunAs.Unit or RunAs.UnitWithoutSetId)
            {
                await EnsureUnitUserAsync();
                Assert.Equal(0, (await Proc.RunAsync("chown", ["bridge:mail", state.Path])).ExitCode);
                var caps = runAs == RunAs.Unit ? UnitCapabilities : UnitCapabilities.Replace(",+setuid,+setgid", "", StringComparison.Ordinal);
                process = await BridgeProcess.StartUnderAsync(["setpriv", "--reuid=bridge", "--regid=mail", "--init-groups",
                    $"--inh-caps={caps}", $"--ambient-caps={caps}", "--"], work, environment, args);
            }
            else
            {
                process = await BridgeProcess.StartAsync(work, environment, args);
            }
            return new Daemon(work, spool, state, port, process);
        }
        catch
        {
            work.Dispose();
            spool.Dispose();
            state.Dispose();
            throw;
        }
    }

    /// <summary>The unit's user: bridge, group mail (as deploy/install.sh and the package create it).</summary>
    public static async Task EnsureUnitUserAsync()
    {
        if ((await Proc.RunAsync("id", ["bridge"])).ExitCode != 0)
        {
            var made = await Proc.RunAsync("useradd", ["--system", "--gid", "mail", "--no-create-home", "--shell", "/usr/sbin/nologin", "bridge"]);
            Assert.True(made.ExitCode == 0, made.Output);
        }
    }

    /// <summary>The daemon's resident memory, from /proc.</summary>
    public long ResidentBytes
    {
        get
        {
            var line = File.ReadAllLines($"/proc/{Process.Pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            var kb = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1] ?? "0";
            return long.Parse(kb, System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Process.DisposeAsync();
        Work.Dispose();
        Spool.Dispose();
        State.Dispose();
    }
}
