// Job: the verbs of the mailbridge executable: the daemon (default), `check`, `drain`, `collect`, `resolve`, `probe`,
// `--version`, `--help`.
// Settings work the same for every verb: appsettings.json in the working directory (else /etc/bridge), environment,
// --Bridge:Key=value.
// Failure: an unknown verb prints the usage and exits 64 (EX_USAGE).
using System.Reflection;
using Bridge.Collection;
using Bridge.Configuration;
using Bridge.Delivery.Spool;
using Bridge.Delivery.Store;
using Bridge.Operations;
using Bridge.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bridge.Hosting;

public static class CommandLine
{
    private const string Usage = """
        Usage: mailbridge [check [--dovecot-config FILE] [--exim BINARY] [--exim-config FILE] | drain [--user NAME] [--dry-run] | collect --user LOGIN | resolve ADDRESS... | probe ADDRESS [--via HOST:PORT] [--keep] [--wait S]]
               [--Bridge:Key=value ...]
               mailbridge --version | --help

          (no command)  run the daemon: the SMTP listener that takes mail from your MTA (see README.md)
          check         check the configuration and this machine (port, spool permissions, mailboxes, store, and
                        Postfix's, Exim's and Dovecot's settings for Bridge where they are installed);
                        one line per finding, OK / WARN / FAIL with the fix; exit code 1 when anything FAILs
          drain         deliver the mail waiting in /var/mail spools to the mail store (Bridge:Legacy:*) and remove
                        from the spool exactly what the store accepted; --user NAME for one mailbox, --dry-run lists
          collect       what the daemon does at each Dovecot login (its collect socket), by hand: when LOGIN's user is
                        in Legacy mode, move the mail in its first short name's spool into the store, for at most
                        Bridge:Legacy:LoginCollectTimeout; always exit code 0
          resolve       for each address: the reply Bridge would give at RCPT and, if accepted, the user, first short
                        name, mailbox (exists, owner, mode), mode and why, and target; sends nothing; exit code 1 when
                        any address is refused
          probe         send one test message through the MTA (127.0.0.1:25, or --via HOST:PORT, e.g. Bridge itself)
                        and follow it to the spool or the store, each hop with its time; the probe is removed from
                        the mailbox unless --keep; exit code 0 only when it arrived (--wait, default 60 s)

        Settings come from ./appsettings.json (or /etc/bridge/appsettings.json when the working directory has none),
        the environment (Bridge__Listen__Port=2627) and the command line
        (--Bridge:Mode=Legacy).
        """;

    public static string Version =>
        typeof(CommandLine).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0";

    public static async Task<int> RunAsync(string[] args)
    {
        var verb = args.Length > 0 && !args[0].StartsWith("--Bridge", StringComparison.OrdinalIgnoreCase) ? args[0] : null;
        switch (verb)
        {
            case null:
                return await RunDaemonAsync(args).ConfigureAwait(false);
            case "--version":
                Console.WriteLine($"mailbridge {Version}");
                return 0;
            case "--help" or "-h" or "help":
                Console.WriteLine(Usage);
                return 0;
            case "check" when args.Skip(1).Any(a => a is "--help" or "-h"):
                Console.WriteLine("Usage: mailbridge check [--dovecot-config FILE] [--exim BINARY] [--exim-config FILE] [--Bridge:Key=value ...]\n  Checks the configuration, this machine, and Postfix (postconf; MAIL_CONFIG), Exim (exim -bP) and Dovecot (doveconf) where installed; exit code 1 when any finding is FAIL.");
                return 0;
            case "check":
                return await CheckAsync(args[1..]).ConfigureAwait(false);
            case "drain" when args.Skip(1).Any(a => a is "--help" or "-h"):
                Console.WriteLine("Usage: mailbridge drain [--user NAME] [--dry-run] [--Bridge:Key=value ...]\n  Delivers spooled mail to the mail store; exit code 1 when a mailbox could not be drained completely.");
                return 0;
            case "drain":
                return await DrainAsync(args[1..]).ConfigureAwait(false);
            case "probe" when args.Skip(1).Any(a => a is "--help" or "-h"):
                Console.WriteLine("Usage: mailbridge probe ADDRESS [--via HOST:PORT] [--keep] [--wait SECONDS] [--Bridge:Key=value ...]\n  Sends one test message (through the MTA at 127.0.0.1:25 unless --via) and follows it; exit code 0 only when it arrived.");
                return 0;
            case "probe":
                return await ProbeAsync(args[1..]).ConfigureAwait(false);
            case "resolve" when args.Skip(1).Any(a => a is "--help" or "-h"):
                Console.WriteLine("Usage: mailbridge resolve ADDRESS... [--Bridge:Key=value ...]\n  Explains, for each address, Bridge's reply at RCPT and where the mail would go; exit code 1 when any is refused.");
                return 0;
            case "resolve":
                return await ResolveAsync(args[1..]).ConfigureAwait(false);
            case "collect" when args.Skip(1).Any(a => a is "--help" or "-h"):
                Console.WriteLine("Usage: mailbridge collect --user LOGIN [--Bridge:Key=value ...]\n  Moves LOGIN's spooled mail into the store within Bridge:Legacy:LoginCollectTimeout; exit code 0 (a login must not fail for it).");
                return 0;
            case "collect":
                return await CollectAsync(args[1..]).ConfigureAwait(false);
            default:
                await Console.Error.WriteLineAsync($"mailbridge: unknown command '{verb}'\n{Usage}").ConfigureAwait(false);
                return 64;
        }
    }

    private static async Task<int> RunDaemonAsync(string[] args)
    {
        var (host, error) = BridgeHost.Build(args);
        if (host is null)
        {
            await Console.Error.WriteLineAsync(error!.Message).ConfigureAwait(false);
            return error.ExitCode;
        }
        using (host)
        {
            await host.RunAsync().ConfigureAwait(false);
        }
        return 0;
    }

    private static async Task<int> DrainAsync(string[] args)
    {
        string? user = null;
        var dryRun = false;
        var settings = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--user" when i + 1 < args.Length:
                    user = args[++i];
                    break;
                case "--dry-run":
                    dryRun = true;
                    break;
                default:
                    settings.Add(args[i]);
                    break;
            }
        }
        var snapshot = await LoadSnapshotAsync([.. settings]).ConfigureAwait(false);
        if (snapshot is null)
        {
            return StartupError.ConfigExitCode;
        }
        if (await JournalProblemAsync(snapshot).ConfigureAwait(false))
        {
            return StartupError.UnavailableExitCode;
        }
        return await SpoolDrain.RunAsync(snapshot, user, dryRun, Console.Out, CancellationToken.None).ConfigureAwait(false);
    }

    private static async Task<int> ProbeAsync(string[] args)
    {
        var via = TakeOption(ref args, "--via") ?? "127.0.0.1:25";
        var waitText = TakeOption(ref args, "--wait");
        var keep = args.Contains("--keep");
        args = [.. args.Where(a => a != "--keep")];
        var addresses = args.Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToList();
        if (addresses.Count != 1 || (waitText is not null && !int.TryParse(waitText, System.Globalization.CultureInfo.InvariantCulture, out _)))
        {
            await Console.Error.WriteLineAsync("Usage: mailbridge probe ADDRESS [--via HOST:PORT] [--keep] [--wait SECONDS] [--Bridge:Key=value ...]").ConfigureAwait(false);
            return 64;
        }
        var snapshot = await LoadSnapshotAsync([.. args.Where(a => a.StartsWith("--", StringComparison.Ordinal))]).ConfigureAwait(false);
        if (snapshot is null)
        {
            return StartupError.ConfigExitCode;
        }
        if (await JournalProblemAsync(snapshot).ConfigureAwait(false))
        {
            return StartupError.UnavailableExitCode;
        }
        var wait = TimeSpan.FromSeconds(waitText is null ? 60 : int.Parse(waitText, System.Globalization.CultureInfo.InvariantCulture));
        return await Probe.RunAsync(snapshot, addresses[0], via, keep, wait, Console.Out, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>Removes "--name VALUE" from the arguments and returns VALUE (null when absent).</summary>
    private static string? TakeOption(ref string[] args, string name)
    {
        var at = Array.IndexOf(args, name);
        if (at < 0 || at + 1 >= args.Length)
        {
            return null;
        }
        var value = args[at + 1];
        args = [.. args[..at], .. args[(at + 2)..]];
        return value;
    }

    /// <summary>The post-login collection: the login's first short name's spool into the store, bounded in time. Exit 0
    /// whatever happens (the script must let the login go on); what happened is printed for the mail log.</summary>
    private static async Task<int> CollectAsync(string[] args)
    {
        var login = TakeOption(ref args, "--user");
        if (string.IsNullOrEmpty(login))
        {
            await Console.Error.WriteLineAsync("Usage: mailbridge collect --user LOGIN [--Bridge:Key=value ...]").ConfigureAwait(false);
            return 0;
        }
        var snapshot = await LoadSnapshotAsync(args).ConfigureAwait(false);
        if (snapshot is null || await JournalProblemAsync(snapshot).ConfigureAwait(false))
        {
            return 0;
        }
        await using var pool = new StoreConnectionPool();
        var store = new StoreClient(() => snapshot.Store, pool, null, NullLogger.Instance);
        var result = await LoginCollect.RunAsync(snapshot, store, login, new InProcessMailboxLocks(),
            new AppendJournal(snapshot.Options.Spool.JournalDirectory), CancellationToken.None).ConfigureAwait(false);
        foreach (var line in result.Lines)
        {
            await Console.Out.WriteLineAsync(line).ConfigureAwait(false);
        }
        return 0;
    }

    private static async Task<int> ResolveAsync(string[] args)
    {
        var addresses = args.Where(a => !a.StartsWith("--", StringComparison.Ordinal)).ToList();
        if (addresses.Count == 0)
        {
            await Console.Error.WriteLineAsync("Usage: mailbridge resolve ADDRESS... [--Bridge:Key=value ...]").ConfigureAwait(false);
            return 64;
        }
        var snapshot = await LoadSnapshotAsync([.. args.Where(a => a.StartsWith("--", StringComparison.Ordinal))]).ConfigureAwait(false);
        if (snapshot is null)
        {
            return StartupError.ConfigExitCode;
        }
        var allAccepted = true;
        foreach (var address in addresses)
        {
            var (lines, accepted) = AddressReport.Explain(snapshot, address);
            allAccepted &= accepted;
            foreach (var line in lines)
            {
                Console.WriteLine(line);
            }
        }
        return allAccepted ? 0 : 1;
    }

    /// <summary>The verbs that cut mailboxes (drain, collect, probe) use the journal as the daemon does: only when it is
    /// Bridge's own (AppendJournal.Prepare). True, and the reason said, when it is not.</summary>
    private static async Task<bool> JournalProblemAsync(SettingsSnapshot snapshot)
    {
        if (new AppendJournal(snapshot.Options.Spool.JournalDirectory).Prepare() is not { } problem)
        {
            return false;
        }
        await Console.Error.WriteLineAsync($"mailbridge: {problem}").ConfigureAwait(false);
        return true;
    }

    /// <summary>The validated settings a verb runs with, or null after printing why they are invalid (exit 78).</summary>
    private static async Task<SettingsSnapshot?> LoadSnapshotAsync(string[] settings)
    {
        var configuration = LoadConfiguration(settings, out var loadError);
        var (snapshot, errors) = configuration is null ? (null, [loadError!]) : SettingsSnapshot.Load(configuration, new SystemPasswdDatabase());
        if (snapshot is null)
        {
            await Console.Error.WriteLineAsync("mailbridge: invalid configuration: " + string.Join("; ", errors)).ConfigureAwait(false);
        }
        return snapshot;
    }

    private static IConfiguration? LoadConfiguration(string[] args, out string? error)
    {
        error = null;
        try
        {
            var environment = Environment.GetEnvironmentVariable("DOTNET_ENVIRONMENT") ?? Environments.Production;
            return new ConfigurationBuilder()
                .SetBasePath(ConfigurationLocation.Directory())
                .AddJsonFile("appsettings.json", optional: true)
                .AddJsonFile($"appsettings.{environment}.json", optional: true)
                .AddEnvironmentVariables()
                .AddCommandLine(args)
                .Build();
        }
        catch (InvalidDataException ex)
        {
            error = $"{ex.Message} {ex.InnerException?.Message}".TrimEnd();
            return null;
        }
    }

    private static async Task<int> CheckAsync(string[] args)
    {
        var tools = new PeerConfigs(TakeOption(ref args, "--dovecot-config"), TakeOption(ref args, "--exim"), TakeOption(ref args, "--exim-config"));
        var configuration = LoadConfiguration(args, out var loadError);
        if (configuration is null)
        {
            Console.WriteLine(new Finding(Level.Fail, "configuration", loadError!));
            return 1;
        }
        var findings = await MachineCheck.RunAsync(configuration, new SystemPasswdDatabase(), CancellationToken.None, tools).ConfigureAwait(false);
        foreach (var finding in findings)
        {
            Console.WriteLine(finding);
        }
        return findings.Any(f => f.Level == Level.Fail) ? 1 : 0;
    }
}
