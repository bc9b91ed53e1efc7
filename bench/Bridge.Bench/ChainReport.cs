// Job: render the chain measurements (Chains.cs) for RESULTS.md: messages per second of each chain with the
// ratios a site feels, then the CPU each process used per message and how busy the machine was, and the chain
// targets of issue #18 (legacy >= 0.95x Postfix's lmtp(8), Bridge <= 0.5 ms CPU per relayed message, spool >= 1.2x
// Postfix's local(8)).
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
            "apart from the transport: `relayhost = [127.0.0.1]:<Bridge>` (deploy/postfix/main.cf.snippet) for the chains " +
            "through Bridge, `default_transport = lmtp:inet:<Dovecot>` into the same Dovecot Bridge relays to, `local_transport = local` " +
            $"into the same mbox Bridge appends to. Median of {rounds} rounds (slowest-fastest), the four chains interleaved, " +
            "each round starting at the next chain.");
        Line(text);
        Line(text, $"| load | {Chains.LegacyVia} | {Chains.LegacyDirect} | legacy chain ratio | {Chains.SpoolVia} | {Chains.SpoolDirect} | spool chain ratio | {Chains.Sink} | smtp-sink chain / local(8) chain |");
        Line(text, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var shape in shapes)
        {
            Line(text, $"| {shape.Label} | {Cell(runs[(shape, Chains.LegacyVia)])} | {Cell(runs[(shape, Chains.LegacyDirect)])} | " +
                $"{Ratio(runs, shape, Chains.LegacyVia, Chains.LegacyDirect).ToString("0.00", Invariant)}x | {Cell(runs[(shape, Chains.SpoolVia)])} | " +
                $"{Cell(runs[(shape, Chains.SpoolDirect)])} | {Ratio(runs, shape, Chains.SpoolVia, Chains.SpoolDirect).ToString("0.00", Invariant)}x | " +
                $"{Cell(runs[(shape, Chains.Sink)])} | {Ratio(runs, shape, Chains.Sink, Chains.SpoolDirect).ToString("0.00", Invariant)}x |");
        }
        Line(text);
        Line(text, $"`{Chains.Sink}`: the same front relaying to Postfix's `smtp-sink`, which answers and discards (its clock stops when the " +
            "front's log says the last message was sent). No disk, no relay: the most any SMTP hop after Postfix can deliver on this machine.");
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
            foreach (var chain in new[] { Chains.LegacyVia, Chains.LegacyDirect, Chains.SpoolVia, Chains.SpoolDirect, Chains.Sink })
            {
                var list = runs[(shape, chain)];
                var cells = Columns.Select(c => PerMessage(list, c.System, c.Names)).ToList();
                var all = list.Sum(r => r.Cpu.Seconds.Values.Sum()) * 1000 / list.Sum(r => r.Messages);
                var busy = list.Average(r => r.Cpu.Busy);
                Line(text, $"| {chain} | {string.Join(" | ", cells.Select(Ms))} | {Ms(all)} | {busy.ToString("P0", Invariant)} |");
            }
        }
    }

    /// <summary>The rows of the Targets table this section owns.</summary>
    public static IEnumerable<(string Target, string Measured, bool Met)> Targets(IReadOnlyList<LoadShape> shapes,
        Dictionary<(LoadShape, string), List<ChainRun>> runs)
    {
        foreach (var shape in shapes)
        {
            var ratio = Ratio(runs, shape, Chains.LegacyVia, Chains.LegacyDirect);
            yield return ($"legacy chain >= 0.95x Postfix lmtp(8) into the same Dovecot, {shape.Label}", $"{ratio.ToString("0.00", Invariant)}x", ratio >= 0.95);
        }
        foreach (var shape in shapes)
        {
            var bridge = PerMessage(runs[(shape, Chains.LegacyVia)], "Bridge", []);
            yield return ($"Bridge CPU per relayed message in the legacy chain <= 0.5 ms, {shape.Label}", Ms(bridge), bridge <= 0.5);
        }
        foreach (var shape in shapes)
        {
            var ratio = Ratio(runs, shape, Chains.SpoolVia, Chains.SpoolDirect);
            yield return ($"spool chain >= 1.2x Postfix local(8) into the same mbox, {shape.Label}", $"{ratio.ToString("0.00", Invariant)}x", ratio >= 1.2);
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

    private static void Line(StringBuilder text, string line = "") => Report.Line(text, line);
}
