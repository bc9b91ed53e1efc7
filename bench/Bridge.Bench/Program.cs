// Job: the benchmark's one entry point (bench/run.sh): starts every system under test once, runs smtp-source
// against each, run after run interleaved (so drift hits all alike), then legacy vs Dovecot again with the store
// on a CPU of its own, then the latency (each target's, and what Bridge adds per message), mailbox-size and memory measurements, and writes the table with medians, ratios and targets to RESULTS.md (and stdout).
// Failure: any run that fails or loses a message stops the benchmark with a message; nothing half is written.
using System.Globalization;
using Bridge.Bench;
using Bridge.Tests.Support;

var options = BenchOptions.Parse(args);
if (options is null)
{
    Console.Error.WriteLine("usage: bridge-bench [--runs N] [--messages N] [--quick] [--chains] [--logins] [--serve] [--out FILE]");
    return 64;
}
Peers.RequireRoot();
var started = DateTimeOffset.Now;
Console.WriteLine($"Benchmark: {options.Runs} runs, {options.Messages} messages of {options.MessageBytes} bytes per run (1 session: {options.Messages / 4})");

if (options.LoginsOnly)
{
    var logins = await LoginCollectBench.RunAsync(options.LoginRounds);
    await PublishAsync(Report.RenderLoginsOnly(started, await Machine.DescribeAsync(Path.GetTempPath()), logins));
    return 0;
}

// --serve: SIGINT and SIGTERM stop every peer, also when they come while the peers start or are being stopped.
using var serveStop = options.Serve ? new StopSignal() : null;
// The LMTP fronts first: each server of an LMTP chain puts its socket in its front's private/ (main.cf.lmtp's way).
await using var lmtpFronts = await LmtpFronts.StartAsync();
await using var spool = await BridgeTarget.StartSpoolAsync(LmtpFronts.SocketOf(lmtpFronts.ToSpool));
await using var postfix = await PostfixLocalTarget.StartAsync();
await using var legacy = await BridgeTarget.StartLegacyAsync(LmtpFronts.SocketOf(lmtpFronts.ToLegacy));
await using var dovecot = await DovecotLmtpTarget.StartAsync();
await using var sink = await SmtpSinkTarget.StartAsync();
await using var sinkLmtp = await SmtpSinkTarget.StartLmtpAsync(LmtpFronts.SocketOf(lmtpFronts.ToSink));
var spoolLmtp = new BridgeLmtpTarget(spool);
Target[] targets = [spool, postfix, legacy, dovecot, sink, spoolLmtp];
await using var chains = await Chains.StartAsync(spool, legacy, sink, sinkLmtp, lmtpFronts);
if (serveStop is not null)
{
    // For profiling by hand (dotnet-trace, dotnet-counters, smtp-source): everything started, nothing measured.
    Console.WriteLine($"Bridge spool: port {spool.Port} pid {spool.Pid}; Bridge legacy: port {legacy.Port} pid {legacy.Pid}; " +
        $"Postfix: port {postfix.Port}; Dovecot LMTP: port {dovecot.Port}; smtp-sink: port {sink.Port}; recipient {spool.Recipient}. Ctrl-C or SIGTERM ends.");
    foreach (var chain in chains.All)
    {
        Console.WriteLine($"chain {chain.Name}: Postfix port {chain.Port}, master pid {chain.Watched[0].Pid}");
    }
    await serveStop.WaitAsync();
    return 0; // the peers are stopped by their disposals, in the reverse order of their start; serveStop last
}

LoadShape[] shapes =
[
    new(1, false, options.Messages / 4, options.MessageBytes), new(1, true, options.Messages / 4, options.MessageBytes),
    new(16, false, options.Messages, options.MessageBytes), new(16, true, options.Messages, options.MessageBytes),
];

// First what a site sees: the chains with a real Postfix in front (16 sessions into Postfix).
LoadShape[] chainShapes = [shapes[2], shapes[3]];
var chainRuns = await Chains.RunAsync(chains.All, chainShapes, options.Runs);
if (options.ChainsOnly)
{
    await PublishAsync(Report.RenderChainsOnly(started, options, await Machine.DescribeAsync(Path.GetTempPath()), chainShapes, chainRuns));
    return 0;
}
foreach (var target in targets)
{
    await SmtpSource.RunAsync(target, shapes[3] with { Messages = 200 }); // warm-up: JIT, process pools, caches
}

var throughput = new Dictionary<(LoadShape, string), List<double>>();
for (var run = 1; run <= options.Runs; run++)
{
    // Each run starts at the next target, so no system always follows the same one (a run right after Postfix's
    // queue-file churn pays for it in the file system); every timed run starts after a sync.
    var shift = (run - 1) % targets.Length;
    foreach (var shape in shapes)
    {
        foreach (var target in targets.Skip(shift).Concat(targets.Take(shift)))
        {
            await Proc.RunAsync("sync", []);
            var rate = await SmtpSource.RunAsync(target, shape);
            throughput.TryAdd((shape, target.Name), []);
            throughput[(shape, target.Name)].Add(rate);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"run {run}/{options.Runs}  {shape.Label,-45} {target.Name,-18} {rate,8:0} msg/s"));
        }
    }
}

var storeOwnCore = await StoreOnItsOwnCore.RunAsync(legacy, dovecot, [shapes[2], shapes[3]], options.Runs);

var latency = new Dictionary<string, LatencyResult>();
foreach (var target in targets.Where(t => t != spoolLmtp)) // the latency probe speaks TCP only
{
    latency[target.Name] = await FixedRateLatency.RunAsync(target, 100, options.LatencyDuration);
    Console.WriteLine($"latency at 100 msg/s  {target.Name,-18} p50 {latency[target.Name].P50Milliseconds:0.00} ms  p99 {latency[target.Name].P99Milliseconds:0.00} ms");
}
// What Bridge adds, per message: each message through Bridge paired with the same message straight to the baseline
// (spool: smtp-sink, the bare SMTP reply; legacy: the very Dovecot LMTP Bridge relays to).
var added = new Dictionary<string, LatencyResult>
{
    [spool.Name] = await AddedLatency.RunAsync(spool, new Baseline(sink.Port, false, sink.Recipient), 100, options.LatencyDuration),
    [legacy.Name] = await AddedLatency.RunAsync(legacy, new Baseline(legacy.Store!.LmtpPort, true, TestAccounts.Alice), 100, options.LatencyDuration),
};
foreach (var (name, result) in added)
{
    Console.WriteLine($"added at 100 msg/s    {name,-18} p50 {result.P50Milliseconds:0.00} ms  p99 {result.P99Milliseconds:0.00} ms (per message, paired)");
}

var mailboxSize = await MailboxSizeLatency.RunAsync(spool, options.Messages / 10, options.LargeMailboxBytes);
Console.WriteLine($"append latency: empty mbox p50 {mailboxSize.Empty.P50Milliseconds:0.00} ms, {options.LargeMailboxBytes >> 20} MiB mbox p50 {mailboxSize.Large.P50Milliseconds:0.00} ms");

var loadMemory = await MemoryPeaks.UnderLoadAsync(options.Messages, options.MessageBytes);
var largeMemory = await MemoryPeaks.OneLargeMessageAsync(options.LargeMessageBytes);
Console.WriteLine($"RSS: 16 sessions peak {loadMemory.PeakBytes >> 20} MiB; one {options.LargeMessageBytes / 1_000_000} MB message peak {largeMemory.PeakBytes >> 20} MiB (at rest {largeMemory.RestingBytes >> 20} MiB)");

var loginCollect = await LoginCollectBench.RunAsync(options.LoginRounds);

var machine = await Machine.DescribeAsync(Path.GetTempPath());
await PublishAsync(Report.Render(new ReportData(started, options, machine, shapes, throughput, storeOwnCore, latency, added, mailboxSize, loadMemory, largeMemory,
    chainShapes, chainRuns)) + "\n" + LoginCollectBench.Render(loginCollect));
return 0;

// The report to stdout and, with --out, to its file.
async Task PublishAsync(string report)
{
    Console.WriteLine();
    Console.WriteLine(report);
    if (options.Output is not null)
    {
        await File.WriteAllTextAsync(options.Output, report);
        Console.WriteLine($"written to {options.Output}");
    }
}

internal sealed record BenchOptions(int Runs, int Messages, int MessageBytes, TimeSpan LatencyDuration, long LargeMailboxBytes,
    int LargeMessageBytes, string? Output, bool Serve = false, bool ChainsOnly = false, bool LoginsOnly = false, int LoginRounds = 80)
{
    public static BenchOptions? Parse(string[] args)
    {
        var options = new BenchOptions(5, 2000, 10 * 1024, TimeSpan.FromSeconds(20), 1L << 30, 25_000_000, null);
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--runs" when int.TryParse(value, CultureInfo.InvariantCulture, out var runs) && runs > 0:
                    options = options with { Runs = runs };
                    i++;
                    break;
                case "--messages" when int.TryParse(value, CultureInfo.InvariantCulture, out var messages) && messages >= 40:
                    options = options with { Messages = messages };
                    i++;
                    break;
                case "--out" when value is not null:
                    options = options with { Output = Path.GetFullPath(value) };
                    i++;
                    break;
                case "--chains":
                    options = options with { ChainsOnly = true };
                    break;
                case "--logins":
                    options = options with { LoginsOnly = true };
                    break;
                case "--serve":
                    options = options with { Serve = true };
                    break;
                case "--quick":
                    options = options with { Runs = 1, Messages = 400, LatencyDuration = TimeSpan.FromSeconds(3), LargeMailboxBytes = 64L << 20, LoginRounds = 10 };
                    break;
                default:
                    return null;
            }
        }
        return options;
    }
}
