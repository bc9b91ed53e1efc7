// Job: the soak's entry point (tests/Bridge.Soak/run.sh; test.sh runs a short one): starts the world, runs the load,
// the foreign writers and the faults for --minutes, stops the faults, waits until every queue has drained, checks the
// invariant and Bridge's health (journal settled, RSS under its bound, no unhandled exception in its log), prints the
// table, and exits 0 only when nothing was lost, changed or duplicated without a kill to explain it.
// Failure: a broken invariant prints the seed (`--seed S` replays the schedule) and the first message of each kind.
using System.Globalization;
using System.Text;
using Bridge.Soak;
using Bridge.Tests.Support;

var minutes = 3.0;
int? seedArgument = null;
var rssLimitMb = 768;
string? output = null;
for (var i = 0; i < args.Length; i++)
{
    var value = i + 1 < args.Length ? args[i + 1] : null;
    switch (args[i])
    {
        case "--minutes" when double.TryParse(value, CultureInfo.InvariantCulture, out var m) && m > 0:
            minutes = m;
            i++;
            break;
        case "--seed" when int.TryParse(value, CultureInfo.InvariantCulture, out var s):
            seedArgument = s;
            i++;
            break;
        case "--rss-limit-mb" when int.TryParse(value, CultureInfo.InvariantCulture, out var r) && r > 0:
            rssLimitMb = r;
            i++;
            break;
        case "--out" when value is not null:
            output = Path.GetFullPath(value);
            i++;
            break;
        default:
            Console.Error.WriteLine("usage: bridge-soak [--minutes N] [--seed S] [--rss-limit-mb N] [--out FILE]");
            return 64;
    }
}
var seed = seedArgument ?? Random.Shared.Next(1, 1_000_000);
var replay = string.Create(CultureInfo.InvariantCulture, $"sudo tests/Bridge.Soak/run.sh --seed {seed} --minutes {minutes}");
Console.WriteLine($"soak: seed {seed}, {minutes} minutes (replay: {replay})");

const int Clients = 3; // about 6 messages a second on 2 cores, with every fault running
var ledger = new Ledger();
await using var world = await SoakWorld.StartAsync(spoolBytes: 768L << 20);
var started = DateTimeOffset.UtcNow;
using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(minutes));
var foreignWriters = new List<(ForeignWriter Writer, string User)>
{
    (await ForeignWriter.StartAsync(world.MailboxOf(SoakWorld.LegacyUser), SoakWorld.LegacyUser, "dotlock", $"foreign-dotlock-{seed}", seed), SoakWorld.LegacyUser),
    (await ForeignWriter.StartAsync(world.MailboxOf(SoakWorld.MovingUser), SoakWorld.MovingUser, "fcntl", $"foreign-fcntl-{seed}", seed + 1), SoakWorld.MovingUser),
};
var faults = new Faults(world, ledger, seed);
var running = new List<Task>(faults.Start(stop.Token));
for (var c = 0; c < Clients; c++)
{
    running.Add(Load.RunAsync(world, ledger, $"soak-{seed}-c{c}", unchecked((seed * 31) + c), stop.Token));
}
running.Add(Load.SlowClientsAsync(world, ledger, seed + 99, stop.Token));
await Task.WhenAll(running);
foreach (var (writer, _) in foreignWriters)
{
    await writer.StopAsync();
}
await faults.RestoreAsync();
Console.WriteLine($"soak: faults stopped after {(DateTimeOffset.UtcNow - started).TotalSeconds:0} s; draining");

// Drain: both fronts' queues empty (flushed, as their retry timers would), then Bridge's journal settled.
var drainStart = DateTimeOffset.UtcNow;
var findings = new List<Finding>();
var drained = false;
while (DateTimeOffset.UtcNow - drainStart < TimeSpan.FromMinutes(4))
{
    if (await world.SmtpFront.QueuedAsync() == 0 && await world.LmtpFront.QueuedAsync() == 0)
    {
        drained = true;
        break;
    }
    await world.SmtpFront.FlushAsync();
    await world.LmtpFront.FlushAsync();
    await Task.Delay(2000);
}
var drainTime = DateTimeOffset.UtcNow - drainStart;
if (!drained)
{
    findings.Add(new Finding("queue not empty", $"after {drainTime.TotalSeconds:0} s: SMTP front {await world.SmtpFront.QueuedAsync()}, LMTP front {await world.LmtpFront.QueuedAsync()} messages queued"));
    // Why they wait, in the report itself (the CI log keeps nothing else): each queued message and its front's reason.
    foreach (var (name, front) in new[] { ("SMTP front", world.SmtpFront), ("LMTP front", world.LmtpFront) })
    {
        var listing = (await front.QueueListingAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (listing.Length > 1)
        {
            findings.Add(new Finding("queue not empty", $"{name}'s queue: {string.Join(" | ", listing.Take(30).Select(l => l.Trim()))}"));
        }
    }
}
// Every entry (an append in flight, a cut, a cursor, one set aside in kept/) settles once nothing is delivered.
string[] journal = [];
for (var i = 0; i < 20 && (journal = Directory.GetFiles(world.Journal, "*", SearchOption.AllDirectories)).Length > 0; i++)
{
    await Task.Delay(1000);
}
if (journal.Length > 0)
{
    // The reasons beside the entries set aside say what recovery met (the CI log is often all there is to read).
    var reasons = journal.Where(j => j.EndsWith(".why", StringComparison.Ordinal))
        .Select(j => $"{Path.GetFileName(j)}: {File.ReadAllText(j).Trim()}");
    findings.Add(new Finding("journal unsettled", $"{journal.Length} entries left: {string.Join(", ", journal.Select(j => Path.GetRelativePath(world.Journal, j)))}" +
        string.Concat(reasons.Select(r => $"; {r}"))));
}

// Bridge stops as systemd stops it; then nothing writes while the mailboxes are read.
var lines = world.BridgeLines;
if (world.Bridge is { } bridge)
{
    bridge.Signal(15);
    await bridge.WaitForExitAsync(TimeSpan.FromSeconds(30));
    lines = world.BridgeLines;
}
foreach (var line in lines.Where(l => l.Contains("Unhandled exception", StringComparison.Ordinal)).Take(1))
{
    findings.Add(new Finding("unhandled exception", line));
}
if (ledger.RssPeakBytes > rssLimitMb * (1L << 20))
{
    findings.Add(new Finding("memory", $"Bridge's RSS reached {ledger.RssPeakBytes >> 20} MiB, over the bound of {rssLimitMb} MiB"));
}
var foreign = new Dictionary<string, string>();
foreach (var (writer, user) in foreignWriters)
{
    foreach (var id in writer.Ids)
    {
        foreign[id] = user;
    }
    await writer.DisposeAsync();
}
var outcome = await Invariant.CheckAsync(world, ledger, foreign);
findings.AddRange(outcome.Findings);

var report = new StringBuilder();
void Line(string text = "") => report.Append(text).Append('\n');
Line($"# Soak: seed {seed}, {minutes} minutes ({started:yyyy-MM-dd HH:mm} UTC)");
Line();
Line("| what | count |");
Line("|---|---:|");
Line($"| messages accepted by the fronts (SMTP {ledger.Sent.Values.Count(s => s.Via == "smtp")}, LMTP {ledger.Sent.Values.Count(s => s.Via == "lmtp")}) | {outcome.Messages} |");
Line($"| deliveries owed (message x user) | {outcome.Deliveries} |");
Line($"| bytes accepted | {ledger.Sent.Values.Sum(s => (long)s.Bytes)} |");
Line($"| records of the foreign writers (dotlock+fcntl, fcntl only) | {outcome.Foreign} |");
Line($"| copies found (store + spools) | {outcome.Copies} |");
Line($"| expunged by the IMAP reader | {outcome.Expunged} |");
foreach (var group in ledger.Faults.GroupBy(f => f.Kind).OrderBy(g => g.Key, StringComparer.Ordinal))
{
    Line($"| fault: {group.Key} | {group.Count()} |");
}
foreach (var (why, count) in ledger.Refused.OrderBy(r => r.Key, StringComparer.Ordinal))
{
    Line($"| not accepted by a front: {why} (not owed) | {count} |");
}
Line($"| lost | **{findings.Count(f => f.Kind == "lost")}** |");
Line($"| changed | **{findings.Count(f => f.Kind == "changed")}** |");
Line($"| duplicates (explained by a kill or store stop in flight) | {outcome.Duplicates} ({outcome.Explained}) |");
foreach (var (shape, count) in outcome.DuplicatesBy.OrderByDescending(d => d.Value).Take(8))
{
    Line($"| duplicates of the shape {shape} | {count} |");
}
Line($"| time to drain after the faults | {drainTime.TotalSeconds:0} s |");
Line($"| Bridge's peak RSS (bound {rssLimitMb} MiB) | {ledger.RssPeakBytes >> 20} MiB |");
Line();
if (findings.Count == 0)
{
    Line("Invariant held: nothing lost, nothing changed, every duplicate explained, every spool readable, queues empty, journal settled.");
}
else
{
    Line($"**Invariant broken** (seed {seed}; replay: `{replay}`):");
    // The CI log keeps only this report: the first message of each broken rule is followed through the logs here.
    (string Name, string[] Lines)[] fronts = [("smtp front", ReadLines(world.SmtpFront.LogPath)), ("lmtp front", ReadLines(world.LmtpFront.LogPath))];
    foreach (var group in findings.GroupBy(f => f.Kind))
    {
        Line($"- {group.Key} ({group.Count()}): first: {group.First().Detail}");
        foreach (var more in group.Key == "queue not empty" ? group.Skip(1) : [])
        {
            Line($"    {more.Detail}");
        }
        if (group.Key == "lost")
        {
            // "soak-1-c0-5 for bridgetest3 (sent ... via lmtp, ...)": by user and by way in.
            Line($"    by user and way in: {string.Join(", ", group.Select(f => f.Detail.Split(' ')).GroupBy(w => $"{w[2]} {(w.Contains("writer)") ? "foreign" : w[Array.IndexOf(w, "via") + 1].TrimEnd(','))}").OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key}: {g.Count()}"))}");
        }
        var first = group.First().Detail.Split(' ')[0];
        if (first.StartsWith("soak-", StringComparison.Ordinal))
        {
            foreach (var line in Trace.Of(first, fronts, lines))
            {
                Line($"    {line}");
            }
        }
    }
}
if (findings.Count > 0)
{
    // What a replay is compared with: every Bridge line of the run, both fronts' logs and the fault timeline.
    var evidence = Path.Combine(Path.GetTempPath(), $"bridge-soak-evidence-{seed}");
    Directory.CreateDirectory(evidence);
    await File.WriteAllLinesAsync(Path.Combine(evidence, "bridge.log"), lines);
    File.Copy(world.SmtpFront.LogPath, Path.Combine(evidence, "postfix-smtp.log"), overwrite: true);
    File.Copy(world.LmtpFront.LogPath, Path.Combine(evidence, "postfix-lmtp.log"), overwrite: true);
    await File.WriteAllLinesAsync(Path.Combine(evidence, "faults.log"),
        ledger.Faults.OrderBy(f => f.Start).Select(f => $"{f.Start:HH:mm:ss.fff} - {f.End:HH:mm:ss.fff} {f.Kind}"));
    await File.WriteAllLinesAsync(Path.Combine(evidence, "foreign.log"), foreignWriters.SelectMany(w => w.Writer.Lines));
    await File.WriteAllLinesAsync(Path.Combine(evidence, "findings.log"), findings.Select(f => $"{f.Kind}: {f.Detail}"));
    if (findings.Any(f => f.Kind == "journal unsettled"))
    {
        // Recovery's own notes and the faults around them: in CI the printed report is the only evidence that stays.
        foreach (var line in lines.Where(l => l.Contains("crash", StringComparison.OrdinalIgnoreCase) || l.Contains("journal", StringComparison.OrdinalIgnoreCase)).Take(20))
        {
            Line($"    bridge: {line}");
        }
    }
    Line($"Evidence (Bridge's log, the fronts' logs, the faults, every finding): {evidence}");
}
Console.WriteLine();
Console.Write(report);
if (output is not null)
{
    await File.WriteAllTextAsync(output, report.ToString());
}
return findings.Count == 0 ? 0 : 1;

static string[] ReadLines(string path) => File.Exists(path) ? File.ReadAllLines(path) : [];
