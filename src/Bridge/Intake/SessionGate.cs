// Job: who may open a session and when Bridge stops taking mail. At accept: clients outside
// Bridge:AllowedClients get "554 5.7.1"; when Bridge:MaxConnections sessions are open, the one waiting longest and
// slowest for its client (over Bridge:SlowClientTimeout at under 500 bytes/s) gives its slot to the newcomer, and
// only when none is slow does the newcomer get "421 4.7.0"; all of it is logged. It also keeps the byte budget all
// sessions share (Bridge:MaxBytesInFlight). For a graceful stop: Draining makes new transactions answer 421 4.3.2, and InFlight counts the
// messages being delivered right now, which the stop waits for.
// Failure: none; a refusal is the reply line to send before closing.
using System.Net;
using Bridge.Configuration;
using Bridge.Observability;
using Microsoft.Extensions.Logging;

namespace Bridge.Intake;

public sealed partial class SessionGate(LiveSettings settings, BridgeMetrics metrics, ILogger<SessionGate> logger)
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<ISessionSlot, byte> _sessions = new();
    private long _bytesInFlight;
    private int _open;
    private int _inFlight;
    private volatile bool _draining;
    private (List<string> Source, ClientAllowList List)? _allowList;

    public bool Draining => _draining;

    /// <summary>Inactivity limit of a session's reads (Bridge:CommandTimeout), also inside DATA.</summary>
    public TimeSpan IdleLimit => settings.Current.Options.CommandTimeout;

    public long MaxMessageBytes => settings.Current.Options.MaxMessageBytes;

    public int MaxLineBytes => settings.Current.Options.MaxLineBytes;

    public int InFlight => Volatile.Read(ref _inFlight);

    public void BeginDrain() => _draining = true;

    /// <summary>Null when the session may start (then Release must follow), else the reply to send before closing.
    /// <paramref name="client"/> is null on the LMTP Unix socket, whose permissions already decided who may connect.</summary>
    public string? Admit(IPAddress? client)
    {
        var options = settings.Current.Options;
        if (client is not null && !AllowListFor(options.AllowedClients).Allows(client))
        {
            LogRefusedClient(client);
            metrics.ConnectionRefused("not-allowed");
            return Replies.NotAllowed(client);
        }
        if (Interlocked.Increment(ref _open) > options.MaxConnections)
        {
            var slowest = _sessions.Keys.Where(s => s.IsSlow(options.SlowClientTimeout)).MaxBy(s => s.Waiting);
            if (slowest is not null && slowest.Evict())
            {
                // The slow session leaves (421 4.4.2) and frees its slot as it closes; the new one is served now.
                LogGaveWay(client, slowest.Waiting.TotalSeconds, options.MaxConnections);
                metrics.SessionOpened();
                return null;
            }
            Interlocked.Decrement(ref _open);
            LogTooMany(client, options.MaxConnections);
            metrics.ConnectionRefused("too-many");
            return Replies.TooManyConnections;
        }
        metrics.SessionOpened();
        return null;
    }

    internal void Register(ISessionSlot session) => _sessions.TryAdd(session, 0);

    internal void Unregister(ISessionSlot session) => _sessions.TryRemove(session, out _);

    /// <summary>Charges bytes held unanswered to Bridge:MaxBytesInFlight; false (nothing charged) when it is spent.</summary>
    public bool TryCharge(long bytes)
    {
        var limit = settings.Current.Options.MaxBytesInFlight;
        if (Interlocked.Add(ref _bytesInFlight, bytes) <= limit)
        {
            return true;
        }
        Interlocked.Add(ref _bytesInFlight, -bytes);
        LogBudgetSpent(limit);
        return false;
    }

    public void Uncharge(long bytes) => Interlocked.Add(ref _bytesInFlight, -bytes);

    /// <summary>Bytes charged to Bridge:MaxBytesInFlight right now.</summary>
    public long BytesInFlight => Interlocked.Read(ref _bytesInFlight);

    public void Release()
    {
        Interlocked.Decrement(ref _open);
        metrics.SessionClosed();
    }

    public IDisposable DeliveryStarted()
    {
        Interlocked.Increment(ref _inFlight);
        return new Finished(this);
    }

    private ClientAllowList AllowListFor(List<string> cidrs)
    {
        var cached = _allowList;
        if (cached is { } hit && ReferenceEquals(hit.Source, cidrs))
        {
            return hit.List;
        }
        var list = new ClientAllowList(cidrs);
        _allowList = (cidrs, list);
        return list;
    }

    private sealed class Finished(SessionGate gate) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                Interlocked.Decrement(ref gate._inFlight);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "refused connection from {Client}: not in Bridge:AllowedClients (554 5.7.1)")]
    private partial void LogRefusedClient(IPAddress client);

    [LoggerMessage(Level = LogLevel.Warning, Message = "all {Max} connection slots in use (Bridge:MaxConnections): a session slow for {Waited:0.0} s (Bridge:SlowClientTimeout) gave its slot to {Client} (421 4.4.2)")]
    private partial void LogGaveWay(IPAddress? client, double waited, int max);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Bridge:MaxBytesInFlight ({Limit} bytes) is spent: a session holding more than 1 MiB unanswered was refused (452 4.3.1)")]
    private partial void LogBudgetSpent(long limit);

    [LoggerMessage(Level = LogLevel.Warning, Message = "refused connection from {Client}: {Max} sessions open, Bridge:MaxConnections (421 4.7.0)")]
    private partial void LogTooMany(IPAddress? client, int max);
}
