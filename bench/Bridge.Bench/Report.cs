// Job: render one benchmark's numbers as bench/RESULTS.md: the machine, throughput medians (with the spread of
// the runs), the ratios the targets are about and whether each is met, latency, mailbox size and memory.
// Failure: none (pure formatting).
using System.Globalization;
using System.Text;

namespace Bridge.Bench;

internal sealed record ReportData(DateTimeOffset Started, BenchOptions Options, IReadOnlyList<(string Key, string Value)> Machine,
    IReadOnlyList<LoadShape> Shapes, Dictionary<(LoadShape, string), List<double>> Throughput,
    Dictionary<(LoadShape, string), List<double>>? StoreOwnCore, Dictionary<string, LatencyResult> Latency,
    Dictionary<string, LatencyResult> AddedLatency,
    MailboxSizeResult MailboxSize, MemoryResult LoadMemory, MemoryResult LargeMemory,
    IReadOnlyList<LoadShape> ChainShapes, Dictionary<(LoadShape, string), List<ChainRun>> ChainRuns);

internal static class Report
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static string Render(ReportData data)
    {
        var o = data.Options;
        var text = new StringBuilder();
        Line(text, "# Benchmark results");
        Line(text);
        Line(text, $"Written by `sudo bench/run.sh` (see bench/README.md) on {data.Started:yyyy-MM-dd HH:mm zzz}: {o.Runs} runs, " +
            $"{o.Messages} messages of {o.MessageBytes / 1024} KB per run at 16 sessions and {o.Messages / 4} at 1 session, all to one " +
            "mailbox, sent by Postfix's `smtp-source`. Every system ran on this machine at the same time, runs interleaved. " +
            "A run's clock stops when the last message is in the mailbox (mbox or Maildir), for smtp-sink at its last reply. " +
            "Bridge and Postfix fsync each message before answering `250`; Dovecot with its defaults.");
        Line(text);
        Line(text, "## Machine");
        Line(text);
        foreach (var (key, value) in data.Machine)
        {
            Line(text, $"- {key}: {value}");
        }
        Line(text);
        ChainReport.Render(text, data.ChainShapes, data.ChainRuns, o.Runs);
        Line(text);
        Line(text, "## The components on their own: smtp-source talking to each system directly");
        Line(text);
        Line(text, "### Throughput, messages per second (median of the runs, slowest-fastest in brackets)");
        Line(text);
        string[] names = ["Bridge spool", "Postfix local(8)", "Bridge legacy", "Dovecot LMTP", "smtp-sink"];
        Line(text, "| load | " + string.Join(" | ", names) + " | spool / Postfix | legacy / Dovecot | spool / smtp-sink |");
        Line(text, "|---|" + string.Concat(Enumerable.Repeat("---:|", names.Length + 3)));
        foreach (var shape in data.Shapes)
        {
            var cells = names.Select(n => Cell(data.Throughput[(shape, n)]));
            Line(text, $"| {shape.Label} | {string.Join(" | ", cells)} | {Ratio(data, shape, "Bridge spool", "Postfix local(8)")} | " +
                $"{Ratio(data, shape, "Bridge legacy", "Dovecot LMTP")} | {Ratio(data, shape, "Bridge spool", "smtp-sink")} |");
        }
        Line(text);
        Line(text, "### LMTP on the Unix socket against SMTP on TCP (the same Bridge in spool mode, the same mailbox; msg/s)");
        Line(text);
        Line(text, "| load | Bridge spool, SMTP on TCP | Bridge spool, LMTP on the socket | LMTP / SMTP |");
        Line(text, "|---|---:|---:|---:|");
        foreach (var shape in data.Shapes.Where(s => data.Throughput.ContainsKey((s, "Bridge spool LMTP"))))
        {
            Line(text, $"| {shape.Label} | {Cell(data.Throughput[(shape, "Bridge spool")])} | {Cell(data.Throughput[(shape, "Bridge spool LMTP")])} | " +
                $"{Ratio(data, shape, "Bridge spool LMTP", "Bridge spool")} |");
        }
        if (data.StoreOwnCore is { } own)
        {
            Line(text);
            Line(text, $"### Legacy mode with the store on a CPU of its own (median msg/s, slowest-fastest; not a target)");
            Line(text);
            Line(text, $"Both Dovecots' processes on CPU {StoreOnItsOwnCore.StoreCpu} only, Bridge and smtp-source on the other CPU(s) (`taskset`), for both " +
                "systems alike, runs interleaved. Above, every cycle Bridge spends comes out of the store's share of this machine; " +
                "here it cannot, as on a machine with spare cores, so the ratio shows what Bridge saves the store per message " +
                "(pooled connections, MAIL+RCPT+BDAT in one round trip).");
            Line(text);
            Line(text, "| load | Bridge legacy | Dovecot LMTP | legacy / Dovecot |");
            Line(text, "|---|---:|---:|---:|");
            foreach (var shape in data.Shapes.Where(s => own.ContainsKey((s, "Bridge legacy"))))
            {
                var ratio = Stats.Median(own[(shape, "Bridge legacy")]) / Stats.Median(own[(shape, "Dovecot LMTP")]);
                Line(text, $"| {shape.Label} | {Cell(own[(shape, "Bridge legacy")])} | {Cell(own[(shape, "Dovecot LMTP")])} | " +
                    $"{ratio.ToString("0.00", Invariant)}x |");
            }
        }
        Line(text);
        Line(text, "### Latency at a fixed 100 messages per second (one connection, end of DATA to reply)");
        Line(text);
        Line(text, "| target | p50 | p99 |");
        Line(text, "|---|---:|---:|");
        foreach (var (name, result) in data.Latency)
        {
            Line(text, $"| {name} | {Ms(result.P50Milliseconds)} | {Ms(result.P99Milliseconds)} |");
        }
        var spoolAdded = data.AddedLatency["Bridge spool"];
        var legacyAdded = data.AddedLatency["Bridge legacy"];
        Line(text);
        Line(text, $"Added by Bridge spool mode over smtp-sink (the bare SMTP reply): p50 {Ms(spoolAdded.P50Milliseconds)}, p99 {Ms(spoolAdded.P99Milliseconds)}. " +
            $"Added by Bridge legacy mode over Dovecot LMTP on its own: p50 {Ms(legacyAdded.P50Milliseconds)}, p99 {Ms(legacyAdded.P99Milliseconds)}. " +
            $"Per message: each message's time through Bridge minus the same message's time straight to smtp-sink or to the " +
            $"Dovecot LMTP Bridge relays to, sent in pairs at 100 pairs/s ({spoolAdded.Samples} and {legacyAdded.Samples} pairs), and the percentiles of those differences.");
        Line(text);
        Line(text, "### Append latency: empty mailbox vs a large one (Bridge spool, one connection, messages alternating between an empty mailbox and a large one)");
        Line(text);
        var m = data.MailboxSize;
        var growth = (m.Large.P50Milliseconds / m.Empty.P50Milliseconds) - 1;
        var growthPercent = Math.Round(growth * 100) + 0.0; // "+ 0.0" turns a rounded -0 into 0, which prints as "0"
        Line(text, "| mailbox | p50 | p99 |");
        Line(text, "|---|---:|---:|");
        Line(text, $"| empty | {Ms(m.Empty.P50Milliseconds)} | {Ms(m.Empty.P99Milliseconds)} |");
        Line(text, $"| {m.LargeBytes >> 20} MiB | {Ms(m.Large.P50Milliseconds)} | {Ms(m.Large.P99Milliseconds)} |");
        Line(text);
        Line(text, "### Memory (Bridge, resident set, each on a freshly started daemon)");
        Line(text);
        Line(text, $"- 16 sessions, {o.Messages} messages one per connection then {o.Messages} over reused connections: peak " +
            $"{MiB(data.LoadMemory.PeakBytes)} (at rest before: {MiB(data.LoadMemory.RestingBytes)})");
        Line(text, $"- one {o.LargeMessageBytes / 1_000_000} MB message: peak {MiB(data.LargeMemory.PeakBytes)}, at rest before " +
            $"{MiB(data.LargeMemory.RestingBytes)}, added by the message {MiB(data.LargeMemory.AddedBytes)} " +
            $"({(double)data.LargeMemory.AddedBytes / o.LargeMessageBytes:0.00}x its size)");
        Line(text);
        Line(text, "## Targets");
        Line(text);
        var sixteen = data.Shapes.Where(s => s.Sessions == 16).ToList();
        Line(text, "| target | measured | met |");
        Line(text, "|---|---|---|");
        foreach (var (target, measured, met) in ChainReport.Targets(data.ChainShapes, data.ChainRuns))
        {
            Line(text, $"| {target} | {measured} | {Met(met)} |");
        }
        foreach (var shape in sixteen)
        {
            var ratio = RatioValue(data, shape, "Bridge spool", "Postfix local(8)");
            Line(text, $"| spool >= 2.0x Postfix local(8), {shape.Label} | {ratio.ToString("0.00", Invariant)}x | {Met(ratio >= 2.0)} |");
        }
        foreach (var shape in sixteen)
        {
            var ratio = RatioValue(data, shape, "Bridge legacy", "Dovecot LMTP");
            Line(text, $"| legacy >= 1.0x Dovecot LMTP, {shape.Label} | {ratio.ToString("0.00", Invariant)}x | {Met(ratio >= 1.0)} |");
        }
        Line(text, $"| {m.LargeBytes >> 20} MiB mailbox append within 20% of an empty one (p50) | {growthPercent:+0;-0;0}% | {Met(growth <= 0.20)} |");
        Line(text, $"| RSS < 150 MB at 16 sessions | {MiB(data.LoadMemory.PeakBytes)} | {Met(data.LoadMemory.PeakBytes < 150_000_000)} |");
        Line(text, $"| 25 MB message < 3x its size in RSS (added over rest) | {MiB(data.LargeMemory.AddedBytes)} | {Met(data.LargeMemory.AddedBytes < 3L * o.LargeMessageBytes)} |");
        Line(text, $"| p99 added latency < 5 ms at 100 msg/s, spool (over smtp-sink) | {Ms(spoolAdded.P99Milliseconds)} | {Met(spoolAdded.P99Milliseconds < 5)} |");
        Line(text, $"| p99 added latency < 5 ms at 100 msg/s, legacy (over Dovecot LMTP) | {Ms(legacyAdded.P99Milliseconds)} | {Met(legacyAdded.P99Milliseconds < 5)} |");
        return text.ToString();
    }

    /// <summary>`--chains`: the machine, the chain section and its targets only (for measuring a change quickly).</summary>
    public static string RenderChainsOnly(DateTimeOffset started, BenchOptions o, IReadOnlyList<(string Key, string Value)> machine,
        IReadOnlyList<LoadShape> shapes, Dictionary<(LoadShape, string), List<ChainRun>> runs)
    {
        var text = new StringBuilder();
        Line(text, "# Benchmark results: the chains only");
        Line(text);
        Line(text, $"Written by `sudo bench/run.sh --chains` on {started:yyyy-MM-dd HH:mm zzz}: {o.Runs} rounds.");
        Line(text);
        foreach (var (key, value) in machine)
        {
            Line(text, $"- {key}: {value}");
        }
        Line(text);
        ChainReport.Render(text, shapes, runs, o.Runs);
        Line(text);
        Line(text, "| target | measured | met |");
        Line(text, "|---|---|---|");
        foreach (var (target, measured, met) in ChainReport.Targets(shapes, runs))
        {
            Line(text, $"| {target} | {measured} | {Met(met)} |");
        }
        return text.ToString();
    }

    /// <summary>`--logins`: the machine and the collect-at-login table only.</summary>
    public static string RenderLoginsOnly(DateTimeOffset started, IReadOnlyList<(string Key, string Value)> machine, LoginCollectResult logins)
    {
        var text = new StringBuilder();
        Line(text, "# Benchmark results: collect at login only");
        Line(text);
        Line(text, $"Written by `sudo bench/run.sh --logins` on {started:yyyy-MM-dd HH:mm zzz}.");
        Line(text);
        foreach (var (key, value) in machine)
        {
            Line(text, $"- {key}: {value}");
        }
        Line(text);
        text.Append(LoginCollectBench.Render(logins));
        return text.ToString();
    }

    internal static void Line(StringBuilder text, string line = "") => text.Append(line).Append('\n');

    private static string Cell(List<double> rates) =>
        string.Create(Invariant, $"{Stats.Median(rates):0} ({rates.Min():0}-{rates.Max():0})");

    private static double RatioValue(ReportData data, LoadShape shape, string top, string bottom) =>
        Stats.Median(data.Throughput[(shape, top)]) / Stats.Median(data.Throughput[(shape, bottom)]);

    private static string Ratio(ReportData data, LoadShape shape, string top, string bottom) =>
        RatioValue(data, shape, top, bottom).ToString("0.00", Invariant) + "x";

    private static string Ms(double milliseconds) => milliseconds.ToString("0.00", Invariant) + " ms";

    private static string MiB(long bytes) => (bytes / 1_000_000.0).ToString("0.0", Invariant) + " MB";

    private static string Met(bool met) => met ? "yes" : "**no**";
}
