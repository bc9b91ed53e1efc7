// Job: render the chain measurements (Chains.cs) for RESULTS.md: messages per second of each chain with the
// ratios a site feels (each hop into Bridge, SMTP and LMTP, against Postfix's own delivery and against that hop's
// ceiling), then the CPU each process used per message and how busy the machine was, and the chain targets of issue
// #27 (best spool chain >= 0.95x its hop's ceiling, legacy >= 0.98x Postfix's lmtp(8), Bridge <= 0.5 ms CPU per message).
// Failure: none (pure formatting).
using System.Globalization;
using System.Text;

namespace Bridge.Bench;

internal static class ChainReport
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>The columns of the CPU table: (header, system, the process names it sums; empty: every name not in another column).</summary>
    private static readonly (string Header, string System, string[] Names)[] Columns =
    [
        ("Postfix smtpd", "Postfix", ["smtpd"]),
        ("cleanup", "Postfix", ["cleanup"]),
        ("qmgr", "Postfix", ["qmgr"]),
        ("trivial-rewrite", "Postfix", ["trivial-rewrite"]),
        ("smtp / lmtp / local", "Postfix", ["smtp", "lmtp", "local"]),
        ("Postfix other", "Postfix", []),
        ("Bridge", "Bridge", []),
        ("Dovecot lmtp", "Dovecot", ["lmtp"]),
        ("Dovecot other", "Dovecot", []),
        ("smtp-sink", "smtp-sink", []),
        ("smtp-source", "smtp-source", []),
        ("bench", "bench", []),
    ];

    public static void Render(StringBuilder text, IReadOnlyList<LoadShape> shapes, Dictionary<(LoadShape, string), List<ChainRun>> runs, int rounds)
    {
        Line(text, "## What a site sees: the whole chain, a real Postfix in front");
        Line(text);
        Line(text, $"`smtp-source` sends {shapes[0].Messages} messages of {shapes[0].MessageBytes / 1024} KB to one recipient into a private " +
            "Postfix, which delivers them on; the clock stops when the last one is in the final mailbox. Each front has the same " +
            "main.cf (Debian's defaults, `default_destination_concurrency_limit = 20`, `default_destination_recipient_limit = 1`) " +
            "apart from the transport: into Bridge either `relayhost = [127.0.0.1]:<Bridge>` (deploy/postfix/main.cf.snippet, SMTP on " +
            $"TCP) or `default_transport = lmtp:unix:private/{LmtpFronts.SocketName}` (LMTP on Bridge's socket in the front's private/, " +
            "as deploy/postfix/main.cf.lmtp); `default_transport = lmtp:inet:<Dovecot>` into the same Dovecot Bridge relays to; " +
            "`local_transport = local` into the same mbox Bridge appends to; and each hop's ceiling, the same front into Postfix's " +
            "`smtp-sink` (SMTP on TCP, or `smtp-sink -L` on a Unix socket in the front's private/), which answers and discards " +
            "(its clock stops when the front's log says the last message was sent): no disk, no relay, the most any hop of that kind " +
            $"after Postfix can deliver on this machine. Median of {rounds} rounds (slowest-fastest), all {Chains.All.Length} chains " +
            "interleaved, each round starting at the next chain.");
        Line(text);
        Line(text, $"| load | into Bridge | Postfix -> Bridge -> Dovecot LMTP | {Chains.LegacyDirect} | legacy chain ratio | Postfix -> Bridge -> mbox | " +
            $"{Chains.SpoolDirect} | spool / local(8) | ceiling: Postfix -> smtp-sink | spool / ceiling |");
        Line(text, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var shape in shapes)
        {
            foreach (var hop in Chains.Hops)
            {
                Line(text, $"| {shape.Label} | {hop.Label} | {Cell(runs[(shape, hop.LegacyVia)])} | {Cell(runs[(shape, Chains.LegacyDirect)])} | " +
                    $"{Times(Ratio(runs, shape, hop.LegacyVia, Chains.LegacyDirect))} | {Cell(runs[(shape, hop.SpoolVia)])} | " +
                    $"{Cell(runs[(shape, Chains.SpoolDirect)])} | {Times(Ratio(runs, shape, hop.SpoolVia, Chains.SpoolDirect))} | " +
                    $"{Cell(runs[(shape, hop.Ceiling)])} | {Times(Ratio(runs, shape, hop.SpoolVia, hop.Ceiling))} |");
            }
        }
        Line(text);
        Line(text, "### Where the time goes: CPU per message (ms) of each process, summed over the rounds, and how busy the machine was");
        Line(text);
        Line(text, "Read from /proc every 250 ms (utime+stime of each process of the front Postfix, of Bridge, of Dovecot; " +
            "`Postfix other` holds master, scache, postlogd, anvil, pickup and the CPU of processes that exited between two samples, which " +
            "master(8) reaped; `smtp-source` is the load generator, `bench` this benchmark's own sampling and counting). Busy: the share of both CPUs not idle during the runs " +
            $"(100% = {Environment.ProcessorCount} CPUs busy).");
        foreach (var shape in shapes)
        {
            Line(text);
            Line(text, $"{shape.Label}:");
            Line(text);
            Line(text, "| chain | " + string.Join(" | ", Columns.Select(c => c.Header)) + " | all | busy |");
            Line(text, "|---|" + string.Concat(Enumerable.Repeat("---:|", Columns.Length + 2)));
            foreach (var chain in Chains.All)
            {
                var list = runs[(shape, chain)];
                var cells = Columns.Select(c => PerMessage(list, c.System, c.Names)).ToList();
                var all = list.Sum(r => r.Cpu.Seconds.Values.Sum()) * 1000 / list.Sum(r => r.Messages);
                var busy = list.Average(r => r.Cpu.Busy);
                Line(text, $"| {chain} | {string.Join(" | ", cells.Select(Ms))} | {Ms(all)} | {busy.ToString("P0", Invariant)} |");
            }
        }
    }

    /// <summary>The rows of the Targets table this section owns (issue #27): Bridge's best spool chain >= 0.95x of the
    /// ceiling of its own hop, its best legacy chain >= 0.98x of Postfix's lmtp(8) into the same Dovecot, and Bridge's CPU
    /// per message <= 0.5 ms in every chain through it.</summary>
    public static IEnumerable<(string Target, string Measured, bool Met)> Targets(IReadOnlyList<LoadShape> shapes,
        Dictionary<(LoadShape, string), List<ChainRun>> runs)
    {
        foreach (var shape in shapes)
        {
            var (hop, ratio) = Chains.Hops.Select(h => (h, Ratio(runs, shape, h.SpoolVia, h.Ceiling))).MaxBy(x => x.Item2);
            yield return ($"best spool chain >= 0.95x the ceiling of its hop, {shape.Label}", $"{Times(ratio)} ({hop.Label})", ratio >= 0.95);
        }
        foreach (var shape in shapes)
        {
            var (hop, ratio) = Chains.Hops.Select(h => (h, Ratio(runs, shape, h.LegacyVia, Chains.LegacyDirect))).MaxBy(x => x.Item2);
            yield return ($"best legacy chain >= 0.98x Postfix lmtp(8) into the same Dovecot, {shape.Label}", $"{Times(ratio)} ({hop.Label})", ratio >= 0.98);
        }
        foreach (var shape in shapes)
        {
            foreach (var chain in Chains.Hops.SelectMany(h => new[] { h.LegacyVia, h.SpoolVia }))
            {
                var bridge = PerMessage(runs[(shape, chain)], "Bridge", []);
                yield return ($"Bridge CPU per message <= 0.5 ms, {chain}, {shape.Label}", Ms(bridge), bridge <= 0.5);
            }
        }
    }

    /// <summary>Milliseconds of CPU per message of the processes named (empty: the system's processes no other column names).</summary>
    private static double PerMessage(List<ChainRun> runs, string system, string[] names)
    {
        var named = Columns.Where(c => c.System == system).SelectMany(c => c.Names).ToHashSet();
        var seconds = runs.Sum(r => r.Cpu.Seconds
            .Where(s => s.Key.System == system && (names.Length == 0 ? !named.Contains(s.Key.Process) : names.Contains(s.Key.Process)))
            .Sum(s => s.Value));
        return seconds * 1000 / runs.Sum(r => r.Messages);
    }

    private static double Ratio(Dictionary<(LoadShape, string), List<ChainRun>> runs, LoadShape shape, string top, string bottom) =>
        Stats.Median([.. runs[(shape, top)].Select(r => r.Rate)]) / Stats.Median([.. runs[(shape, bottom)].Select(r => r.Rate)]);

    private static string Cell(List<ChainRun> runs)
    {
        var rates = runs.Select(r => r.Rate).ToList();
        return string.Create(Invariant, $"{Stats.Median(rates):0} ({rates.Min():0}-{rates.Max():0})");
    }

    private static string Ms(double milliseconds) => milliseconds.ToString("0.00", Invariant);

    private static string Times(double ratio) => ratio.ToString("0.00", Invariant) + "x";

    private static void Line(StringBuilder text, string line = "") => Report.Line(text, line);
}
