// Job: the chains a site runs, each with a real Postfix in front that smtp-source talks to: Postfix -> Bridge
// (legacy) -> Dovecot LMTP against Postfix's own lmtp(8) -> the same Dovecot, and Postfix -> Bridge (spool) ->
// mbox against Postfix's local(8) -> the same mbox; and Postfix -> smtp-sink, an SMTP server that discards
// everything, the ceiling of any chain with an SMTP hop after Postfix. Every front has the same main.cf (Debian's defaults, the test
// instance's settings, default_destination_concurrency_limit 20, recipient limit 1) apart from the transport lines.
// Runs interleave the four chains, rotating the order; each run is timed until the last message is in the final
// mailbox and measures the CPU of every process on the way (ProcessCpu).
// Failure: a front that does not start, a run that loses a message or leaves mail queued throws (no half report).
using System.Globalization;
using Bridge.Tests.Support;

namespace Bridge.Bench;

/// <summary>One chain: smtp-source -> a Postfix front -> (Bridge ->) the final delivery of <paramref name="final"/>.</summary>
internal sealed class ChainTarget(string name, string mode, bool viaBridge, PostfixServer front, Target final, IReadOnlyList<Watched> others)
    : Target
{
    public override string Name => name;

    /// <summary>"Legacy" or "Spool": which pair this chain belongs to.</summary>
    public string Mode => mode;

    public bool ViaBridge => viaBridge;

    public override int Port => front.SmtpPort;

    public override long? Delivered() => final.Delivered();

    public override Task ResetAsync() => final.ResetAsync();

    public IReadOnlyList<Watched> Watched => [new("Postfix", front.MasterPid, Children: true), .. others];

    public Task<int> QueuedAsync() => front.QueuedAsync();

    public override ValueTask DisposeAsync() => front.DisposeAsync(); // the final target belongs to the caller
}

internal sealed record ChainRun(double Rate, CpuReading Cpu, int Messages);

/// <summary>The messages a Postfix front has handed on ("status=sent" lines of its maillog), for smtp-sink, which
/// keeps nothing to count; read incrementally like MboxCounter.</summary>
internal sealed class SentCounter(PostfixServer front) : Target
{
    private static readonly byte[] Sent = "status=sent"u8.ToArray();
    private readonly byte[] _buffer = new byte[1 << 16];
    private long _offset;
    private long _count;
    private byte[] _partial = [];

    public override string Name => "sent by the front";

    public override int Port => front.SmtpPort;

    public override long? Delivered()
    {
        FileStream stream;
        try
        {
            stream = new FileStream(front.LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
        }
        catch (FileNotFoundException)
        {
            return _count;
        }
        using (stream)
        {
            stream.Position = _offset;
            int n;
            while ((n = stream.Read(_buffer)) > 0)
            {
                _offset += n;
                var text = _partial.Concat(_buffer.AsSpan(0, n).ToArray()).ToArray().AsSpan();
                var lastLf = text.LastIndexOf((byte)'\n');
                var whole = lastLf < 0 ? [] : text[..(lastLf + 1)];
                _partial = text[(lastLf + 1)..].ToArray();
                for (var at = whole.IndexOf(Sent); at >= 0; at = whole.IndexOf(Sent))
                {
                    _count++;
                    whole = whole[(at + Sent.Length)..];
                }
            }
        }
        return _count;
    }

    public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>The four chains, stopped together.</summary>
internal sealed class ChainSet(IReadOnlyList<ChainTarget> chains) : IAsyncDisposable
{
    public IReadOnlyList<ChainTarget> All => chains;

    public async ValueTask DisposeAsync()
    {
        foreach (var chain in chains)
        {
            await chain.DisposeAsync();
        }
    }
}

internal static class Chains
{
    public const string LegacyVia = "Postfix -> Bridge -> Dovecot LMTP";
    public const string LegacyDirect = "Postfix lmtp(8) -> Dovecot LMTP";
    public const string SpoolVia = "Postfix -> Bridge -> mbox";
    public const string SpoolDirect = "Postfix local(8) -> mbox";
    public const string Sink = "Postfix -> smtp-sink";

    /// <summary>The main.cf lines every front shares (apart from the transport).</summary>
    private static readonly string[] Common =
        ["default_destination_concurrency_limit=20", "default_destination_recipient_limit=1"];

    public static async Task<ChainSet> StartAsync(BridgeTarget spool, BridgeTarget legacy, SmtpSinkTarget sink)
    {
        var store = legacy.Store ?? throw new InvalidOperationException("the legacy target has no store");
        var dovecot = new Watched("Dovecot", store.MasterPid, Children: true);
        var spoolBridge = new Watched("Bridge", spool.Pid, Children: false);
        var legacyBridge = new Watched("Bridge", legacy.Pid, Children: false);
        var spoolDirectory = Path.GetDirectoryName(spool.MailboxPath)!;
        var chains = new List<ChainTarget>();
        try
        {
            chains.Add(new(LegacyVia, "Legacy", true, await PostfixServer.StartWithAsync("chain.test",
                [.. Common, .. PostfixServer.RelayToBridge(legacy.Port), "mydestination="]), legacy, [legacyBridge, dovecot]));
            chains.Add(new(LegacyDirect, "Legacy", false, await PostfixServer.StartWithAsync("chain.test",
                [.. Common, "relayhost=", "mydestination=", $"default_transport=lmtp:inet:127.0.0.1:{store.LmtpPort}"]), legacy, [dovecot]));
            chains.Add(new(SpoolVia, "Spool", true, await PostfixServer.StartWithAsync("chain.test",
                [.. Common, .. PostfixServer.RelayToBridge(spool.Port), "mydestination="]), spool, [spoolBridge]));
            // local(8) appends to the very mbox Bridge appends to (mail_spool_directory is Bridge's spool directory).
            chains.Add(new(SpoolDirect, "Spool", false, await PostfixServer.StartWithAsync("chain.test",
                [.. Common, "relayhost=", $"mydestination={Target.Domain}", $"mail_spool_directory={spoolDirectory}", "home_mailbox=",
                    "mailbox_command=", "local_transport=local"]), spool, []));
            var toSink = await PostfixServer.StartWithAsync("chain.test", [.. Common, .. PostfixServer.RelayToBridge(sink.Port), "mydestination="]);
            chains.Add(new(Sink, "Sink", true, toSink, new SentCounter(toSink), [new Watched("smtp-sink", sink.Pid, Children: false)]));
            return new ChainSet(chains);
        }
        catch
        {
            foreach (var chain in chains)
            {
                await chain.DisposeAsync();
            }
            throw;
        }
    }

    /// <summary>Every chain for every shape, <paramref name="runs"/> rounds, the order rotating each round.</summary>
    public static async Task<Dictionary<(LoadShape, string), List<ChainRun>>> RunAsync(IReadOnlyList<ChainTarget> chains,
        IReadOnlyList<LoadShape> shapes, int runs)
    {
        foreach (var chain in chains)
        {
            foreach (var shape in shapes)
            {
                // warm-up: Postfix's processes, Bridge's JIT (tiered compilation settles after some thousand calls), pools
                await SmtpSource.RunAsync(chain, shape with { Messages = 400 }, poll: TimeSpan.FromMilliseconds(100));
            }
        }
        var results = new Dictionary<(LoadShape, string), List<ChainRun>>();
        for (var run = 1; run <= runs; run++)
        {
            var shift = (run - 1) % chains.Count;
            foreach (var shape in shapes)
            {
                foreach (var chain in chains.Skip(shift).Concat(chains.Take(shift)))
                {
                    await Proc.RunAsync("sync", []);
                    await using var cpu = ProcessCpu.Start(chain.Watched);
                    var rate = await SmtpSource.RunAsync(chain, shape, poll: TimeSpan.FromMilliseconds(100));
                    var reading = await cpu.StopAsync("smtp-source");
                    if (await chain.QueuedAsync() is var queued and > 0)
                    {
                        throw new InvalidOperationException($"{chain.Name}: {queued} messages still queued in Postfix after the run");
                    }
                    results.TryAdd((shape, chain.Name), []);
                    results[(shape, chain.Name)].Add(new ChainRun(rate, reading, shape.Messages));
                    var bridge = reading.Seconds.Where(s => s.Key.System == "Bridge").Sum(s => s.Value);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"chain run {run}/{runs}  {shape.Label,-45} {chain.Name,-34} {rate,6:0} msg/s  busy {reading.Busy:P0}  Bridge {bridge * 1000 / shape.Messages:0.00} ms/msg"));
                }
            }
        }
        return results;
    }
}
