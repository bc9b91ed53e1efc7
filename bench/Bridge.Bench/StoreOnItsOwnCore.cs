// Job: the legacy comparison once more with the store on a CPU of its own: every process of each Dovecot (its
// master and services; services started later inherit the master's affinity) on the last CPU, Bridge and
// smtp-source on the others, for Bridge -> Dovecot and smtp-source -> Dovecot alike. On this machine every cycle
// Bridge spends otherwise comes out of the store's share; here it cannot, as on a machine with spare cores, so
// the runs show what Bridge saves the store (pooled connections, one round trip per message). Not a target.
// Failure: taskset missing or failing throws; every affinity is given back to all CPUs afterwards.
using System.Globalization;
using Bridge.Tests.Support;

namespace Bridge.Bench;

internal static class StoreOnItsOwnCore
{
    /// <summary>The CPU the stores are confined to: the last one.</summary>
    public static int StoreCpu => Environment.ProcessorCount - 1;

    /// <summary>Messages per second per (shape, target name), the runs interleaved; null with fewer than 2 CPUs.</summary>
    public static async Task<Dictionary<(LoadShape, string), List<double>>?> RunAsync(BridgeTarget legacy, DovecotLmtpTarget direct,
        IReadOnlyList<LoadShape> shapes, int runs)
    {
        var count = Environment.ProcessorCount;
        if (count < 2 || legacy.Store is null)
        {
            return null;
        }
        var all = $"0-{count - 1}";
        var store = $"{StoreCpu}";
        var others = count == 2 ? "0" : $"0-{count - 2}";
        var stores = new[] { legacy.Store, direct.Store };
        var results = new Dictionary<(LoadShape, string), List<double>>();
        try
        {
            foreach (var dovecot in stores)
            {
                await PinTreeAsync(dovecot.MasterPid, store);
            }
            await PinAsync(legacy.Pid, others);
            for (var run = 1; run <= runs; run++)
            {
                foreach (var shape in shapes)
                {
                    Target[] order = run % 2 == 1 ? [legacy, direct] : [direct, legacy];
                    foreach (var target in order)
                    {
                        await Proc.RunAsync("sync", []);
                        var rate = await SmtpSource.RunAsync(target, shape, others);
                        results.TryAdd((shape, target.Name), []);
                        results[(shape, target.Name)].Add(rate);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"store on CPU {store}, run {run}/{runs}  {shape.Label,-45} {target.Name,-18} {rate,8:0} msg/s"));
                    }
                }
            }
        }
        finally
        {
            foreach (var dovecot in stores)
            {
                await PinTreeAsync(dovecot.MasterPid, all);
            }
            await PinAsync(legacy.Pid, all);
        }
        return results;
    }

    private static async Task PinTreeAsync(int master, string cpus)
    {
        await PinAsync(master, cpus);
        var children = await Proc.RunAsync("pgrep", ["-P", master.ToString(CultureInfo.InvariantCulture)]);
        foreach (var line in children.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(line, CultureInfo.InvariantCulture, out var child))
            {
                await PinAsync(child, cpus, mayHaveExited: true);
            }
        }
    }

    /// <summary>All threads of the process (taskset -a); a service that ended meanwhile is no error.</summary>
    private static async Task PinAsync(int pid, string cpus, bool mayHaveExited = false)
    {
        var result = await Proc.RunAsync(Peers.Require("taskset", "util-linux"), ["-a", "-c", "-p", cpus, pid.ToString(CultureInfo.InvariantCulture)]);
        if (result.ExitCode != 0 && !(mayHaveExited && !Directory.Exists($"/proc/{pid}")))
        {
            throw new InvalidOperationException($"taskset -a -c -p {cpus} {pid} failed: {result.Output}");
        }
    }
}
