// Job: the latency Bridge adds, message by message, at a fixed, modest load: one connection to Bridge and one to its
// baseline (what Bridge relays to, or the bare SMTP reply); every 1/rate seconds (a fixed schedule, as in
// FixedRateLatency) the same 10 KB message goes once through Bridge and once straight to the baseline, and that
// message's added time is its end-of-DATA-to-reply time through Bridge minus its time direct. p50 and p99 are taken
// of those differences: the p99 of what Bridge adds, not the difference of two p99s (which is the added time of no
// message). The two sends of a pair alternate in order, so neither always runs first (warm caches, a pending fsync).
// Failure: a refused message throws (SmtpProbe).
using System.Diagnostics;

namespace Bridge.Bench;

/// <summary>Where the baseline of a pair is reached: its port, whether it speaks LMTP, the recipient it accepts.</summary>
internal sealed record Baseline(int Port, bool Lmtp, string Recipient);

internal static class AddedLatency
{
    public static async Task<LatencyResult> RunAsync(Target bridge, Baseline baseline, int perSecond, TimeSpan duration)
    {
        await bridge.ResetAsync();
        var message = SmtpProbe.Message(10 * 1024, "added latency");
        using var through = await SmtpProbe.ConnectAsync(bridge.Port, bridge.Lmtp);
        using var direct = await SmtpProbe.ConnectAsync(baseline.Port, baseline.Lmtp);
        for (var i = 0; i < 20; i++) // warm-up, not counted
        {
            await through.SendAsync(bridge.Recipient, message);
            await direct.SendAsync(baseline.Recipient, message);
        }
        var added = new List<double>();
        var count = (int)(duration.TotalSeconds * perSecond);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            await FixedRateLatency.UntilDueAsync(i, perSecond, clock);
            TimeSpan viaBridge, straight;
            if (i % 2 == 0)
            {
                viaBridge = await through.SendAsync(bridge.Recipient, message);
                straight = await direct.SendAsync(baseline.Recipient, message);
            }
            else
            {
                straight = await direct.SendAsync(baseline.Recipient, message);
                viaBridge = await through.SendAsync(bridge.Recipient, message);
            }
            added.Add((viaBridge - straight).TotalMilliseconds);
        }
        return LatencyResult.Of(added);
    }
}
