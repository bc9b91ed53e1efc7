// Job: describe the machine a benchmark ran on (CPU, cores, memory, kernel, file system of the spool, fsync
// cost, versions of .NET, Postfix and Dovecot), so RESULTS.md can be compared with another machine's.
// Failure: a detail that cannot be read is reported as "unknown".
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Bridge.Tests.Support;

namespace Bridge.Bench;

internal static class Machine
{
    public static async Task<IReadOnlyList<(string Key, string Value)>> DescribeAsync(string spoolDirectory)
    {
        var cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        var memory = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        var fileSystem = await OutputAsync("findmnt", "-n", "-o", "FSTYPE,OPTIONS", "-T", spoolDirectory);
        return
        [
            ("CPU", $"{cpu}, {Environment.ProcessorCount} cores visible"),
            ("Memory", memory),
            ("Kernel", (await OutputAsync("uname", "-sr")).Trim()),
            ("Spool file system", fileSystem.Trim()),
            ("fsync of a 10 KB append (median of 200)", $"{FsyncMilliseconds(spoolDirectory).ToString("0.000", CultureInfo.InvariantCulture)} ms"),
            (".NET", RuntimeInformation.FrameworkDescription),
            ("Postfix", (await OutputAsync("postconf", "-dh", "mail_version")).Trim()),
            ("Dovecot", (await OutputAsync("dovecot", "--version")).Trim()),
        ];
    }

    private static double FsyncMilliseconds(string directory)
    {
        var path = Path.Combine(directory, ".fsync-probe");
        var block = new byte[10 * 1024];
        var samples = new List<double>();
        using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1))
        {
            for (var i = 0; i < 200; i++)
            {
                file.Write(block);
                var clock = Stopwatch.StartNew();
                file.Flush(flushToDisk: true);
                samples.Add(clock.Elapsed.TotalMilliseconds);
            }
        }
        File.Delete(path);
        return Stats.Percentile(samples, 50);
    }

    private static async Task<string> OutputAsync(string program, params string[] args)
    {
        try
        {
            var result = await Proc.RunAsync(program, args);
            return result.ExitCode == 0 ? result.Stdout : "unknown";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }
}

internal static class Stats
{
    public static double Median(IReadOnlyList<double> values) => Percentile(values, 50);

    /// <summary>Nearest-rank percentile.</summary>
    public static double Percentile(IReadOnlyList<double> values, double percent)
    {
        var sorted = values.Order().ToArray();
        var rank = (int)Math.Ceiling(percent / 100 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
