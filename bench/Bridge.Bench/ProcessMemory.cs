// Job: a process's resident memory from /proc: current (VmRSS) and peak (VmHWM), and resetting the peak
// (writing 5 to /proc/<pid>/clear_refs), so one daemon can be measured for several loads in turn.
// Failure: an unreadable /proc entry throws (the benchmark stops: a number it cannot read is not reported).
using System.Globalization;

namespace Bridge.Bench;

internal static class ProcessMemory
{
    public static long ResidentBytes(int pid) => Read(pid, "VmRSS:");

    public static long PeakResidentBytes(int pid) => Read(pid, "VmHWM:");

    public static void ResetPeak(int pid) => File.WriteAllText($"/proc/{pid}/clear_refs", "5");

    private static long Read(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                var kilobytes = line[field.Length..].Trim().Split(' ')[0];
                return long.Parse(kilobytes, CultureInfo.InvariantCulture) * 1024;
            }
        }
        throw new InvalidOperationException($"/proc/{pid}/status has no {field}");
    }
}
