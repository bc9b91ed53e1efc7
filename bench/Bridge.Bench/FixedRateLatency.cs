// Job: the latency a target adds at a fixed, modest load: one connection sends a 10 KB message every
// 1/rate seconds (on a fixed schedule, so a slow reply delays the next send but not the schedule) and records
// the time from the end of DATA to the reply; p50 and p99 of those.
// Failure: a refused message throws (SmtpProbe).
using System.Diagnostics;

namespace Bridge.Bench;

internal sealed record LatencyResult(double P50Milliseconds, double P99Milliseconds, int Samples)
{
    public static LatencyResult Of(IReadOnlyList<double> milliseconds) =>
        new(Stats.Percentile(milliseconds, 50), Stats.Percentile(milliseconds, 99), milliseconds.Count);
}

internal static class FixedRateLatency
{
    public static async Task<LatencyResult> RunAsync(Target target, int perSecond, TimeSpan duration)
    {
        await target.ResetAsync();
        var message = SmtpProbe.Message(10 * 1024, "fixed rate");
        using var probe = await SmtpProbe.ConnectAsync(target.Port, target.Lmtp);
        for (var i = 0; i < 20; i++)
        {
            await probe.SendAsync(target.Recipient, message); // warm-up, not counted
        }
        var samples = new List<double>();
        var count = (int)(duration.TotalSeconds * perSecond);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            await UntilDueAsync(i, perSecond, clock);
            samples.Add((await probe.SendAsync(target.Recipient, message)).TotalMilliseconds);
        }
        return LatencyResult.Of(samples);
    }

    /// <summary>Waits until message <paramref name="i"/> is due on a fixed schedule of <paramref name="perSecond"/>
    /// from <paramref name="clock"/>'s start (a late message is sent at once; the schedule does not move).</summary>
    public static async Task UntilDueAsync(int i, int perSecond, Stopwatch clock)
    {
        var due = TimeSpan.FromSeconds((double)i / perSecond);
        if (due > clock.Elapsed)
        {
            await Task.Delay(due - clock.Elapsed);
        }
    }
}
