// Job: the "collect at login" table: what Bridge adds to an IMAP login. Four Dovecot stores, configured alike but for
// their post-login setting: none (plain Dovecot), a post-login script that only goes on (the floor of Dovecot's
// post-login mechanism), the shipped deploy/dovecot/30-bridge-collect.conf (the Native AOT client, run by
// script-login itself, asking the running daemon over /run/bridge/collect), and the way before it (a shell script running the
// package's `mailbridge collect --user $USER` for every login, as root). The daemon (collect socket at the shipped
// default path, /run/bridge/collect, so a running installed Bridge stops the benchmark) and the verb are the package's
// own build (self-contained, trimmed, ReadyToRun, as deploy/package.sh publishes it). Logins alternate between the
// four, round after round, so drift hits all alike; each login is timed from connect to the tagged OK of LOGIN
// (Dovecot sends it after the post-login script has exec'ed into imap). Twice: nothing waiting, and 10 messages
// written into the user's spool before each login (untimed), which the login must move into the store. Then logins
// per second with 8 clients at once for a few seconds each, nothing waiting, and the peak RSS of one run of each
// post-login program (`/usr/bin/time`).
// Failure: a refused login, a collection that moved the wrong number of messages, or a missing build throws with its cause.
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Bench;

internal sealed record LoginCollectRow(string Variant, bool Baseline, double P50Milliseconds, double P90Milliseconds, double AddedMilliseconds,
    double WaitingP50Milliseconds, double WaitingAddedMilliseconds, double LoginsPerSecond, long PeakRssKilobytes);

internal sealed record LoginCollectResult(IReadOnlyList<LoginCollectRow> Rows, int Rounds, int Waiting);

internal static class LoginCollectBench
{
    private const int WarmUp = 10;
    private const int Concurrency = 8;
    private static readonly TimeSpan ThroughputTime = TimeSpan.FromSeconds(5);
    private static readonly string[] MaildirFolders = ["new", "cur"];

    /// <summary>The package's build of the daemon (bench/run.sh publishes it as deploy/package.sh does).</summary>
    public static string PackageBuild => Path.Combine(Repository.Root, ".artifacts", "package-publish", "mailbridge");

    private sealed class Variant(string name, DovecotServer store, string? spool)
    {
        public string Name { get; } = name;
        public DovecotServer Store { get; } = store;

        /// <summary>Where mail waits for the login (null: nothing collects for this store).</summary>
        public string? Spool { get; } = spool;

        public List<double> Idle { get; } = [];
        public List<double> Waiting { get; } = [];
    }

    public static async Task<LoginCollectResult> RunAsync(int rounds, int waiting = 10)
    {
        if (!File.Exists(PackageBuild))
        {
            throw new InvalidOperationException($"{PackageBuild} is missing: bench/run.sh publishes it (dotnet publish src/Bridge -c Release -r linux-x64 " +
                "--self-contained true -p:PublishTrimmed=true -p:PublishReadyToRun=true -o .artifacts/package-publish)");
        }
        var user = TestAccounts.Alice;
        var (uid, gid) = await TestAccounts.EnsureAsync(user);
        using var root = new TempDir("bridge-bench-login", TempDir.Mode("755"));
        using var daemonSpool = new TempDir("bridge-bench-login-spool", TempDir.Mode("1777"));
        using var verbSpool = new TempDir("bridge-bench-login-verb-spool", TempDir.Mode("1777"));
        using var daemonRoot = new TempDir("bridge-bench-login-daemon");
        using var verbJournal = new TempDir("bridge-bench-login-verb-journal");

        await using var plain = await DovecotServer.StartStoreWithPostLoginAsync("", user);
        // The floor of any post-login program: Dovecot's script-login running a script that only goes on.
        var noop = root["post-login-noop"];
        await File.WriteAllTextAsync(noop, "#!/bin/sh\nexec \"$@\"\n");
        File.SetUnixFileMode(noop, TempDir.Mode("755"));
        await using var empty = await DovecotServer.StartStoreWithPostLoginAsync(ShippedServices(noop), user);

        // The shipped configuration exactly: the client run by script-login itself (no wrapper), so it asks at its
        // default socket, /run/bridge/collect, where the package's daemon listens.
        var client = root["dovecot-collect"];
        File.Copy(DovecotCollectClient.Path, client);
        File.SetUnixFileMode(client, TempDir.Mode("755"));
        await using var shipped = await DovecotServer.StartStoreWithLoginCollectAsync(client, [], user);
        await using var socketDirectory = RunBridge.Claim();
        await using var daemon = await StartPackageDaemonAsync(daemonRoot, daemonSpool.Path, RunBridge.Socket, shipped.LmtpPort);

        // The way before: the verb for every login, as root (it locks the mailbox and reads Bridge's settings).
        string[] verbSettings = [$"--Bridge:Spool:Directory={verbSpool.Path}", $"--Bridge:Spool:JournalDirectory={verbJournal.Path}", .. Settings(0)];
        var verbScript = root["post-login-verb"];
        await using var verbStore = await DovecotServer.StartStoreWithPostLoginAsync(VerbConfiguration(verbScript), user);
        await File.WriteAllTextAsync(verbScript, "#!/bin/sh\n" +
            $"{Proc.Quote(PackageBuild)} collect --user \"$USER\" {string.Join(' ', verbSettings.Select(Proc.Quote))} " +
            $"--Bridge:Legacy:Port={verbStore.LmtpPort} --Bridge:Collect:Socket= >/dev/null 2>&1 || true\nexec \"$@\"\n");
        File.SetUnixFileMode(verbScript, TempDir.Mode("755"));

        Variant[] variants =
        [
            new("Dovecot, no post-login", plain, null),
            new("Dovecot + empty post-login script (`exec \"$@\"`)", empty, null),
            new("Dovecot + shipped client (AOT, asks the daemon)", shipped, daemonSpool[user]),
            new("Dovecot + `mailbridge collect` script (before)", verbStore, verbSpool[user]),
        ];
        var message = Encoding.ASCII.GetBytes("Return-Path: <sender@example.org>\nFrom: sender@example.org\nSubject: waiting\n\n" +
            string.Concat(Enumerable.Repeat(new string('w', 76) + "\n", 24)) + "\n");

        foreach (var (phase, count) in new[] { ("idle", 0), ("waiting", waiting) })
        {
            for (var round = 0; round < rounds + WarmUp; round++)
            {
                // Each round starts at the next variant, so none always follows the same one.
                foreach (var variant in variants.Skip(round % variants.Length).Concat(variants.Take(round % variants.Length)))
                {
                    if (count > 0 && variant.Spool is not null)
                    {
                        SpoolScenario.CreateMailbox(variant.Spool, Mbox(message, count, round), uid, gid);
                    }
                    var elapsed = await LoginAsync(variant.Store.ImapPort, user);
                    if (count > 0 && variant.Spool is not null && new FileInfo(variant.Spool).Length != 0)
                    {
                        throw new InvalidOperationException($"{variant.Name}: the login left {new FileInfo(variant.Spool).Length} bytes in the spool");
                    }
                    if (round >= WarmUp)
                    {
                        (count == 0 ? variant.Idle : variant.Waiting).Add(elapsed);
                    }
                }
            }
            Console.WriteLine($"login collect: {phase} done ({rounds} rounds)");
        }
        foreach (var variant in variants.Where(v => v.Spool is not null))
        {
            var stored = MaildirCount(variant.Store, user);
            var expected = (long)(rounds + WarmUp) * waiting;
            if (stored != expected)
            {
                throw new InvalidOperationException($"{variant.Name}: the store holds {stored} messages, {expected} were spooled");
            }
        }

        var rows = new List<LoginCollectRow>();
        var baseIdle = Stats.Median(variants[0].Idle);
        var baseWaiting = Stats.Median(variants[0].Waiting);
        foreach (var variant in variants)
        {
            var perSecond = await ThroughputAsync(variant.Store.ImapPort, user);
            var rss = variant.Spool is null ? 0
                : variant == variants[2] ? await PeakRssAsync(client, [], new() { ["USER"] = user })
                : await PeakRssAsync(PackageBuild, ["collect", "--user", user, .. verbSettings, $"--Bridge:Legacy:Port={verbStore.LmtpPort}", "--Bridge:Collect:Socket="], []);
            var idle = Stats.Median(variant.Idle);
            var waited = Stats.Median(variant.Waiting);
            rows.Add(new LoginCollectRow(variant.Name, variant == variants[0], idle, Stats.Percentile(variant.Idle, 90), idle - baseIdle, waited, waited - baseWaiting, perSecond, rss));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"login collect: {variant.Name,-50} idle p50 {idle:0.0} ms (+{idle - baseIdle:0.0}), {waiting} waiting p50 {waited:0.0} ms (+{waited - baseWaiting:0.0}), {perSecond:0} logins/s, RSS {rss} kB"));
        }
        return new LoginCollectResult(rows, rounds, waiting);
    }

    public static string Render(LoginCollectResult result)
    {
        var text = new StringBuilder();
        text.AppendLine("## Collect at login");
        text.AppendLine();
        text.Append("IMAP logins (connect to the tagged OK of LOGIN) to four Dovecot stores configured alike but for the post-login setting, ");
        text.Append(CultureInfo.InvariantCulture, $"alternating, {result.Rounds} rounds after {WarmUp} warm-up rounds; \"waiting\": {result.Waiting} messages in the user's spool before each login, ");
        text.Append("moved into the store by it (checked: the spool is empty after each login and the store holds every message). ");
        text.Append(CultureInfo.InvariantCulture, $"Logins/s: {Concurrency} clients at once for {ThroughputTime.TotalSeconds:0} s, nothing waiting. Peak RSS: one run of the post-login program ");
        text.AppendLine("(`/usr/bin/time`), nothing waiting. The daemon and the verb are the package's own build; the client is the package's Native AOT build.");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"| post-login | nothing waiting p50 | p90 | added | {result.Waiting} waiting p50 | added | logins/s | program's peak RSS |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var row in result.Rows)
        {
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {row.Variant} | {row.P50Milliseconds:0.0} ms | {row.P90Milliseconds:0.0} ms | {Added(row.AddedMilliseconds, row.Baseline)} | {row.WaitingP50Milliseconds:0.0} ms | " +
                $"{Added(row.WaitingAddedMilliseconds, row.Baseline)} | {row.LoginsPerSecond:0} | {(row.PeakRssKilobytes == 0 ? "-" : $"{row.PeakRssKilobytes / 1024.0:0.0} MB")} |"));
        }
        var shipped = result.Rows[2];
        text.AppendLine();
        text.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Target: added time per login with nothing waiting <= 15 ms median: **{(shipped.AddedMilliseconds <= 15 ? "met" : "missed")}** ({shipped.AddedMilliseconds:0.0} ms)."));
        return text.ToString();

        static string Added(double milliseconds, bool baseline) => baseline ? "-" : string.Create(CultureInfo.InvariantCulture, $"{milliseconds:+0.0;-0.0} ms");
    }

    private static string[] Settings(int lmtpPort) =>
    [
        $"--Bridge:LocalDomains:0={SpoolScenario.Domain}", "--Bridge:Mode=Legacy",
        $"--Bridge:Users:0:ShortNames:0={TestAccounts.Alice}", "--Bridge:Users:0:ShortNames:1=alice",
        "--Bridge:Legacy:Host=127.0.0.1", "--Bridge:Legacy:Protocol=Lmtp", .. lmtpPort == 0 ? Array.Empty<string>() : [$"--Bridge:Legacy:Port={lmtpPort}"],
    ];

    /// <summary>The package's daemon, in Legacy mode for the shipped store, with its collect socket.</summary>
    private static async Task<BridgeProcess> StartPackageDaemonAsync(TempDir root, string spool, string socket, int lmtpPort)
    {
        var before = Environment.GetEnvironmentVariable("BRIDGE_EXECUTABLE");
        Environment.SetEnvironmentVariable("BRIDGE_EXECUTABLE", PackageBuild);
        try
        {
            return await BridgeProcess.StartAsync(root, null,
            [
                $"--Bridge:Listen:Port={FreePort.Next()}", $"--Bridge:Spool:Directory={spool}", $"--Bridge:Spool:JournalDirectory={root["journal"]}",
                .. Settings(lmtpPort), $"--Bridge:Collect:Socket={socket}",
            ]);
        }
        finally
        {
            Environment.SetEnvironmentVariable("BRIDGE_EXECUTABLE", before);
        }
    }

    /// <summary>Services as the shipped file defines them, running <paramref name="program"/> as its post-login program.</summary>
    private static string ShippedServices(string program, string user = "$default_internal_user") => $$"""
        service imap {
          executable = imap bridge-collect
        }
        service pop3 {
          executable = pop3 bridge-collect
        }
        service bridge-collect {
          executable = script-login {{program}}
          user = {{user}}
          unix_listener bridge-collect {
          }
        }
        """;

    /// <summary>/run/bridge, where the shipped client finds the daemon's collect socket: made for the run (and removed
    /// after it) unless it exists; a live socket there (an installed Bridge running) stops the benchmark.</summary>
    private sealed class RunBridge : IAsyncDisposable
    {
        public const string Directory = "/run/bridge";
        public const string Socket = Directory + "/collect";
        private readonly bool _made;

        private RunBridge(bool made) => _made = made;

        public static RunBridge Claim()
        {
            if (File.Exists(Socket) || System.IO.Directory.Exists(Socket))
            {
                throw new InvalidOperationException($"{Socket} exists: stop the installed daemon (systemctl stop bridge) for the collect-at-login benchmark, " +
                    "which runs the shipped client against its default socket");
            }
            var made = !System.IO.Directory.Exists(Directory);
            if (made)
            {
                System.IO.Directory.CreateDirectory(Directory, TempDir.Mode("755"));
            }
            return new RunBridge(made);
        }

        public ValueTask DisposeAsync()
        {
            File.Delete(Socket);
            if (_made)
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>The post-login configuration Bridge shipped before the client (deploy/dovecot/30-bridge-collect.conf at
    /// 279e622), pointing at <paramref name="script"/>: as root, without Dovecot's address-space limit.</summary>
    private static string VerbConfiguration(string script) => ShippedServices(script, "root\n  vsz_limit = 0");

    private static byte[] Mbox(byte[] message, int count, int round)
    {
        var text = new MemoryStream();
        for (var i = 0; i < count; i++)
        {
            text.Write(Encoding.ASCII.GetBytes($"From sender@example.org  Mon Nov 23 10:00:00 2026\nMessage-Id: <login-{round}-{i}@bench.test>\n"));
            text.Write(message);
        }
        return text.ToArray();
    }

    /// <summary>One IMAP login: milliseconds from connect to the tagged OK of LOGIN; then LOGOUT.</summary>
    private static async Task<double> LoginAsync(int port, string user)
    {
        using var client = new TcpClient { NoDelay = true };
        var clock = Stopwatch.StartNew();
        await client.ConnectAsync("127.0.0.1", port);
        var stream = client.GetStream();
        using var reader = new StreamReader(stream, Encoding.ASCII);
        var greeting = await reader.ReadLineAsync();
        if (greeting is null || !greeting.StartsWith("* OK", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"IMAP greeting on {port}: {greeting}");
        }
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"a LOGIN {user} {DovecotServer.Password}\r\n"));
        var reply = await TaggedAsync(reader, "a");
        var elapsed = clock.Elapsed.TotalMilliseconds;
        if (!reply.StartsWith("a OK", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"IMAP LOGIN on {port}: {reply}");
        }
        await stream.WriteAsync("b LOGOUT\r\n"u8.ToArray());
        await TaggedAsync(reader, "b");
        return elapsed;
    }

    private static async Task<string> TaggedAsync(StreamReader reader, string tag)
    {
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith(tag + " ", StringComparison.Ordinal))
            {
                return line;
            }
        }
        throw new InvalidOperationException($"IMAP connection closed before the reply to {tag}");
    }

    private static async Task<double> ThroughputAsync(int port, string user)
    {
        var clock = Stopwatch.StartNew();
        var done = 0;
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            while (clock.Elapsed < ThroughputTime)
            {
                await LoginAsync(port, user);
                Interlocked.Increment(ref done);
            }
        }));
        return done / clock.Elapsed.TotalSeconds;
    }

    private static async Task<long> PeakRssAsync(string program, string[] args, Dictionary<string, string> environment)
    {
        var info = new ProcessStartInfo("/usr/bin/time") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in new[] { "-f", "rss=%M", program }.Concat(args))
        {
            info.ArgumentList.Add(arg);
        }
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }
        using var process = Process.Start(info) ?? throw new InvalidOperationException("cannot run /usr/bin/time (apt-get install -y time)");
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        var line = stderr.Split('\n').LastOrDefault(l => l.StartsWith("rss=", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"no peak RSS from /usr/bin/time: {stderr}");
        return long.Parse(line[4..], CultureInfo.InvariantCulture);
    }

    private static long MaildirCount(DovecotServer store, string user) =>
        MaildirFolders.Select(d => Path.Combine(store.HomeOf(user), "Maildir", d))
            .Where(Directory.Exists).Sum(d => (long)Directory.GetFiles(d).Length);
}
