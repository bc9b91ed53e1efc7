// Job: who may open a session and when Bridge stops taking mail. At accept: clients outside
// Bridge:AllowedClients get "554 5.7.1", connections beyond Bridge:MaxConnections get "421 4.7.0", and both
// are logged. For a graceful stop: Draining makes new transactions answer 421 4.3.2, and InFlight counts the
// messages being delivered right now, which the stop waits for.
// Failure: none; a refusal is the reply line to send before closing.
using System.Net;
using Bridge.Hosting;
using Bridge.Observability;
using Microsoft.Extensions.Logging;

namespace Bridge.Intake;

public sealed partial class SessionGate(LiveSettings settings, BridgeMetrics metrics, ILogger<SessionGate> logger)
{
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

    /// <summary>Null when the session may start (then Release must follow), else the reply to send before closing.</summary>
    public string? Admit(IPAddress client)
    {
        var options = settings.Current.Options;
        if (!AllowListFor(options.AllowedClients).Allows(client))
        {
            LogRefusedClient(client);
            metrics.ConnectionRefused("not-allowed");
            return $"554 5.7.1 {client} is not allowed to connect (Bridge:AllowedClients)";
        }
        if (Interlocked.Increment(ref _open) > options.MaxConnections)
        {
            Interlocked.Decrement(ref _open);
            LogTooMany(client, options.MaxConnections);
            metrics.ConnectionRefused("too-many");
            return "421 4.7.0 Too many connections, try again later";
        }
        metrics.SessionOpened();
        return null;
    }

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

    [LoggerMessage(Level = LogLevel.Warning, Message = "refused connection from {Client}: {Max} sessions open, Bridge:MaxConnections (421 4.7.0)")]
    private partial void LogTooMany(IPAddress client, int max);
}
