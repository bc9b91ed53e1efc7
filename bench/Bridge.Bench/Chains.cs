// Job: the chains a site runs, each with a real Postfix in front that smtp-source talks to, each into Bridge both ways
// a site can point Postfix at it (SMTP to its port as relayhost, LMTP to its Unix socket in Postfix's private/):
// Postfix -> Bridge (legacy) -> Dovecot LMTP against Postfix's own lmtp(8) -> the same Dovecot, and Postfix -> Bridge
// (spool) -> mbox against Postfix's local(8) -> the same mbox; and the ceiling of each hop: the same front into
// smtp-sink (SMTP), or smtp-sink -L on a Unix socket (LMTP), servers that discard everything. Every front has the same
// main.cf (Debian's defaults, the test instance's settings, default_destination_concurrency_limit 20, recipient limit
// 1) apart from the transport lines. Runs interleave all chains, rotating the order; each run is timed until the last
// message is in the final mailbox and measures the CPU of every process on the way (ProcessCpu).
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

/// <summary>The chains, stopped together.</summary>
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

/// <summary>The Postfix fronts that hand everything to an LMTP server on a Unix socket in their own private/
/// (`default_transport = lmtp:unix:private/...`, as deploy/postfix/main.cf.lmtp names Bridge's socket): started before
/// the servers, so that each server can put its socket where its front's chrooted lmtp(8) looks.</summary>
internal sealed record LmtpFronts(PostfixServer ToSpool, PostfixServer ToLegacy, PostfixServer ToSink) : IAsyncDisposable
{
    /// <summary>Stops the three (also when the chains, which stop them too, never started).</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await ToSpool.DisposeAsync();
        }
        finally
        {
            try
            {
                await ToLegacy.DisposeAsync();
            }
            finally
            {
                await ToSink.DisposeAsync();
            }
        }
    }

    public const string SocketName = "lmtp-hop";

    public static string SocketOf(PostfixServer front) => Path.Combine(front.QueueDirectory, "private", SocketName);

    public static async Task<LmtpFronts> StartAsync()
    {
        var started = new List<PostfixServer>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                started.Add(await PostfixServer.StartWithAsync("chain.test",
                    [.. Chains.Common, "relayhost=", "mydestination=", $"default_transport=lmtp:unix:private/{SocketName}"]));
            }
            return new LmtpFronts(started[0], started[1], started[2]);
        }
        catch
        {
            foreach (var front in started)
            {
                await front.DisposeAsync();
            }
            throw;
        }
    }
}

/// <summary>One line of the chain table: a hop into Bridge (SMTP on its port, or LMTP on its socket) with the chains
/// that use it and the ceiling of that hop (the same front into smtp-sink, which stores nothing).</summary>
internal sealed record ChainHop(string Label, string LegacyVia, string SpoolVia, string Ceiling);

internal static class Chains
{
    public const string LegacyVia = "Postfix -> Bridge -> Dovecot LMTP";
    public const string LegacyViaLmtp = "Postfix lmtp(8) -> Bridge -> Dovecot LMTP";
    public const string LegacyDirect = "Postfix lmtp(8) -> Dovecot LMTP";
    public const string SpoolVia = "Postfix -> Bridge -> mbox";
    public const string SpoolViaLmtp = "Postfix lmtp(8) -> Bridge -> mbox";
    public const string SpoolDirect = "Postfix local(8) -> mbox";
    public const string Sink = "Postfix -> smtp-sink";
    public const string SinkLmtp = "Postfix lmtp(8) -> smtp-sink -L";

    /// <summary>The two ways into Bridge, each with its ceiling.</summary>
    public static readonly ChainHop[] Hops =
    [
        new("SMTP on TCP (relayhost)", LegacyVia, SpoolVia, Sink),
        new("LMTP on the Unix socket", LegacyViaLmtp, SpoolViaLmtp, SinkLmtp),
    ];

    /// <summary>Every chain, in the order of the CPU table.</summary>
    public static readonly string[] All = [LegacyVia, LegacyViaLmtp, LegacyDirect, SpoolVia, SpoolViaLmtp, SpoolDirect, Sink, SinkLmtp];

    /// <summary>The main.cf lines every front shares (apart from the transport).</summary>
    internal static readonly string[] Common =
        ["default_destination_concurrency_limit=20", "default_destination_recipient_limit=1"];

    /// <param name="lmtp">The LMTP fronts, whose sockets <paramref name="spool"/>, <paramref name="legacy"/> and
    /// <paramref name="sinkLmtp"/> listen on (the chains stop them too).</param>
    public static async Task<ChainSet> StartAsync(BridgeTarget spool, BridgeTarget legacy, SmtpSinkTarget sink, SmtpSinkTarget sinkLmtp, LmtpFronts lmtp)
    {
        var store = legacy.Store ?? throw new InvalidOperationException("the legacy target has no store");
        var dovecot = new Watched("Dovecot", store.MasterPid, Children: true);
        var spoolBridge = new Watched("Bridge", spool.Pid, Children: false);
        var legacyBridge = new Watched("Bridge", legacy.Pid, Children: false);
        var spoolDirectory = Path.GetDirectoryName(spool.MailboxPath)!;
        var chains = new List<ChainTarget>
        {
            new(LegacyViaLmtp, "Legacy", true, lmtp.ToLegacy, legacy, [legacyBridge, dovecot]),
            new(SpoolViaLmtp, "Spool", true, lmtp.ToSpool, spool, [spoolBridge]),
            new(SinkLmtp, "Sink", true, lmtp.ToSink, new SentCounter(lmtp.ToSink), [new Watched("smtp-sink", sinkLmtp.Pid, Children: false)]),
        };
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
            // Run in the order of All (the rounds rotate it).
            return new ChainSet([.. All.Select(name => chains.Single(c => c.Name == name))]);
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
