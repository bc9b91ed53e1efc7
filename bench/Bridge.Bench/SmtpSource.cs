// Job: one timed run of Postfix's smtp-source against a target: N messages of the given size over S parallel
// sessions, one message per connection or all over reused connections (-d), SMTP or LMTP (-L); the clock stops
// when the last message has landed where the target delivers it (the reply, for smtp-sink).
// Failure: smtp-source failing, or deliveries missing after the wait, throws with what was seen.
using System.Diagnostics;
using Bridge.Tests.Support;

namespace Bridge.Bench;

internal sealed record LoadShape(int Sessions, bool ReuseConnections, int Messages, int MessageBytes)
{
    public string Label => $"{Sessions} session{(Sessions == 1 ? "" : "s")}, {(ReuseConnections ? "reused connections" : "one message per connection")}";
}

internal static class SmtpSource
{
    private static readonly TimeSpan DeliveryWait = TimeSpan.FromMinutes(5);

    /// <summary>Messages per second, from the start of smtp-source to the last delivery.</summary>
    /// <param name="cpus">A CPU list for taskset (e.g. "0"): smtp-source runs only there; null: anywhere.</param>
    /// <param name="poll">How often to count deliveries once smtp-source is done (default 2 ms; counting a Maildir of
    /// thousands of files that often costs a CPU share a chain, still delivering for seconds after that, would feel).</param>
    public static async Task<double> RunAsync(Target target, LoadShape shape, string? cpus = null, TimeSpan? poll = null)
    {
        var program = Peers.Require("smtp-source", "postfix");
        await target.ResetAsync();
        var before = target.Delivered() ?? 0;
        string[] args =
        [
            .. shape.ReuseConnections ? new[] { "-d" } : [], .. target.Lmtp ? new[] { "-L" } : [],
            "-s", $"{shape.Sessions}", "-m", $"{shape.Messages}", "-l", $"{shape.MessageBytes}",
            "-f", "bench@client.test", "-t", target.Recipient, "-M", "client.test", target.Server,
        ];
        var clock = Stopwatch.StartNew();
        var result = cpus is null
            ? await Proc.RunAsync(program, args, timeout: DeliveryWait)
            : await Proc.RunAsync(Peers.Require("taskset", "util-linux"), ["-c", cpus, program, .. args], timeout: DeliveryWait);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"smtp-source {string.Join(' ', args)} against {target.Name} failed: {result.Output}");
        }
        while (target.Delivered() is { } delivered && delivered - before < shape.Messages)
        {
            if (clock.Elapsed > DeliveryWait)
            {
                throw new InvalidOperationException($"{target.Name}: only {delivered - before} of {shape.Messages} messages delivered after {DeliveryWait}");
            }
            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(2));
        }
        var elapsed = clock.Elapsed.TotalSeconds;
        if (target.Delivered() is { } total && total - before != shape.Messages)
        {
            throw new InvalidOperationException($"{target.Name}: {total - before} messages delivered, {shape.Messages} sent");
        }
        return shape.Messages / elapsed;
    }
}
