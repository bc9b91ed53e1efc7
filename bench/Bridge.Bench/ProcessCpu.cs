// Job: CPU time per process over one timed run, for the chain tables: every 250 ms it reads utime+stime of each
// watched process and of its children (/proc/<pid>/task/<pid>/children: Postfix's master and Dovecot's master
// start every service as a child), and at the end sums, per (system, process name), what each pid used during
// the run. Children that exit between two samples lose at most their last 250 ms; what the master reaped
// (its cutime+cstime) beyond that is reported as the row "exited" so no CPU goes missing. Also how busy the
// whole machine was (/proc/stat), the load generator's CPU (this process's reaped children) and this process's own
// (the sampling and the counting of deliveries: it is part of "busy" too).
// Failure: a process that vanishes mid-read is skipped at that sample; nothing here throws past a read.
using System.Globalization;

namespace Bridge.Bench;

/// <summary>A process tree to watch: <paramref name="System"/> names it in the tables (e.g. "Postfix", "Bridge").</summary>
internal sealed record Watched(string System, int Pid, bool Children);

/// <summary>CPU seconds per (system, process name) during a run, the run's wall time and the machine's busy fraction.</summary>
internal sealed record CpuReading(IReadOnlyDictionary<(string System, string Process), double> Seconds, double WallSeconds, double Busy);

internal sealed class ProcessCpu : IAsyncDisposable
{
    private const double TicksPerSecond = 100; // USER_HZ: 100 on every Linux ABI .NET runs on

    private readonly IReadOnlyList<Watched> _watched;
    private readonly Dictionary<int, Seen> _seen = [];
    private readonly Dictionary<int, long> _reapedAtStart = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _sampler;
    private readonly long[] _machineAtStart;
    private readonly long _loadAtStart;
    private readonly long _selfAtStart;
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

    private sealed class Seen(string system, string name, long first, int root)
    {
        public string System { get; } = system;

        public string Name { get; } = name;

        public long First { get; } = first;

        public int Root { get; } = root;

        public long Last { get; set; } = first;

        public bool Alive { get; set; } = true;
    }

    private ProcessCpu(IReadOnlyList<Watched> watched)
    {
        _watched = watched;
        _machineAtStart = MachineTicks();
        _loadAtStart = ReapedTicks(Environment.ProcessId);
        _selfAtStart = Stat(Environment.ProcessId)?.Ticks ?? 0;
        foreach (var w in watched)
        {
            _reapedAtStart[w.Pid] = ReapedTicks(w.Pid);
        }
        Sample(atStart: true);
        _sampler = Task.Run(SampleLoopAsync);
    }

    /// <summary>Starts measuring now; <see cref="StopAsync"/> ends it.</summary>
    public static ProcessCpu Start(IReadOnlyList<Watched> watched) => new(watched);

    public async Task<CpuReading> StopAsync(string loadName)
    {
        await _stop.CancelAsync();
        await _sampler;
        Sample(atStart: false);
        var wall = _clock.Elapsed.TotalSeconds;
        var seconds = new Dictionary<(string, string), double>();
        void Add(string system, string name, double value)
        {
            seconds[(system, name)] = seconds.GetValueOrDefault((system, name)) + value;
        }
        foreach (var seen in _seen.Values)
        {
            Add(seen.System, seen.Name, (seen.Last - seen.First) / TicksPerSecond);
        }
        foreach (var w in _watched.Where(w => w.Children))
        {
            // What the root reaped during the run is the whole life of the children that exited; the samples saw
            // those children up to their last 250 ms, so the difference is what no sample caught.
            var reaped = ReapedTicks(w.Pid) - _reapedAtStart[w.Pid];
            var sampledOfExited = _seen.Values.Where(s => s.Root == w.Pid && !s.Alive).Sum(s => s.Last);
            if (reaped - sampledOfExited > 0)
            {
                Add(w.System, "exited", (reaped - sampledOfExited) / TicksPerSecond);
            }
        }
        Add(loadName, loadName, (ReapedTicks(Environment.ProcessId) - _loadAtStart) / TicksPerSecond);
        Add("bench", "bench", ((Stat(Environment.ProcessId)?.Ticks ?? 0) - _selfAtStart) / TicksPerSecond);
        var machine = MachineTicks();
        var total = machine.Zip(_machineAtStart, (a, b) => a - b).Sum();
        var idle = machine[3] - _machineAtStart[3] + machine[4] - _machineAtStart[4];
        return new CpuReading(seconds, wall, total > 0 ? 1 - (double)idle / total : 0);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _sampler;
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }

    private async Task SampleLoopAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                Sample(atStart: false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void Sample(bool atStart)
    {
        var alive = new HashSet<int>();
        foreach (var w in _watched)
        {
            Observe(w.System, w.Pid, w.Pid, atStart, alive);
            if (!w.Children)
            {
                continue;
            }
            foreach (var child in Children(w.Pid))
            {
                Observe(w.System, child, w.Pid, atStart, alive);
            }
        }
        lock (_seen)
        {
            foreach (var (pid, seen) in _seen)
            {
                seen.Alive = alive.Contains(pid);
            }
        }
    }

    private void Observe(string system, int pid, int root, bool atStart, HashSet<int> alive)
    {
        if (Stat(pid) is not { } stat)
        {
            return;
        }
        alive.Add(pid);
        lock (_seen)
        {
            if (_seen.TryGetValue(pid, out var seen) && seen.Name == stat.Name)
            {
                seen.Last = stat.Ticks;
            }
            else
            {
                // Seen first at the start: only what it uses from now on counts; first seen later: it started during the run.
                _seen[pid] = new Seen(system, stat.Name, atStart ? stat.Ticks : 0, root) { Last = stat.Ticks };
            }
        }
    }

    private static int[] Children(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/task/{pid}/children")
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(p => int.Parse(p, CultureInfo.InvariantCulture))
                .ToArray();
        }
        catch (IOException)
        {
            return [];
        }
    }

    /// <summary>The process name and utime+stime in ticks, or null when it is gone.</summary>
    private static (string Name, long Ticks)? Stat(int pid)
    {
        if (StatFields(pid) is not { } fields)
        {
            return null;
        }
        return (fields.Name, fields.After[11] + fields.After[12]);
    }

    /// <summary>cutime+cstime: the CPU of the children this process has waited for.</summary>
    private static long ReapedTicks(int pid) => StatFields(pid) is { } fields ? fields.After[13] + fields.After[14] : 0;

    /// <summary>/proc/PID/stat: the name between the parentheses and the numeric fields after them (state excluded, as 0).</summary>
    private static (string Name, long[] After)? StatFields(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid}/stat");
        }
        catch (IOException)
        {
            return null;
        }
        var open = text.IndexOf('(', StringComparison.Ordinal);
        var close = text.LastIndexOf(')');
        if (open < 0 || close < open)
        {
            return null;
        }
        var after = text[(close + 2)..].Split(' ');
        var numbers = after.Select(f => long.TryParse(f, CultureInfo.InvariantCulture, out var n) ? n : 0).ToArray();
        return numbers.Length > 14 ? (text[(open + 1)..close], numbers) : null;
    }

    /// <summary>The first line of /proc/stat: user nice system idle iowait irq softirq steal, in ticks.</summary>
    private static long[] MachineTicks() =>
        [.. File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Take(8)
            .Select(f => long.Parse(f, CultureInfo.InvariantCulture))];
}
