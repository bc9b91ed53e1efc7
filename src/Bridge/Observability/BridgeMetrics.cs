// Job: Bridge's metrics (System.Diagnostics.Metrics, meter "Bridge"; read them with
// `dotnet-counters monitor -n bridge --counters Bridge`): transactions by outcome and reason, recipients by
// outcome and mode, delivery latency, store attempts, circuit breaker state, sessions open, refused connections.
// Failure: none; recording never throws into the mail path.
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Bridge.Observability;

public sealed class BridgeMetrics
{
    public const string MeterName = "Bridge";

    private readonly Counter<long> _transactions;
    private readonly Counter<long> _recipients;
    private readonly Counter<long> _refusedRecipients;
    private readonly Histogram<double> _latency;
    private readonly Counter<long> _storeAttempts;
    private readonly UpDownCounter<long> _sessions;
    private readonly Counter<long> _refusedConnections;
    private int _breakerOpen;

    public BridgeMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _transactions = meter.CreateCounter<long>("bridge.transactions", "{message}", "Messages answered after DATA, by outcome (accepted, deferred, rejected) and enhanced status code");
        _recipients = meter.CreateCounter<long>("bridge.recipients", "{recipient}", "Recipients by outcome (sent, deferred, bounced, as in the log) and mode");
        _refusedRecipients = meter.CreateCounter<long>("bridge.recipients.refused", "{recipient}", "Recipients refused at RCPT, by enhanced status code");
        _latency = meter.CreateHistogram<double>("bridge.delivery.duration", "s", "Time from the end of DATA to the reply");
        _storeAttempts = meter.CreateCounter<long>("bridge.store.attempts", "{attempt}", "Attempts to relay a message to the mail store");
        _sessions = meter.CreateUpDownCounter<long>("bridge.sessions.open", "{session}", "SMTP sessions open");
        _refusedConnections = meter.CreateCounter<long>("bridge.connections.refused", "{connection}", "Connections refused, by reason (not-allowed, too-many)");
        meter.CreateObservableGauge("bridge.store.breaker_open", () => Volatile.Read(ref _breakerOpen), "{state}", "1 while the mail store's circuit breaker is open");
    }

    public void Transaction(int code, string enhanced, double seconds)
    {
        var outcome = code < 300 ? "accepted" : code < 500 ? "deferred" : "rejected";
        _transactions.Add(1, new TagList { { "outcome", outcome }, { "status", enhanced } });
        _latency.Record(seconds, new KeyValuePair<string, object?>("outcome", outcome));
    }

    public void Recipient(string outcome, string mode) =>
        _recipients.Add(1, new TagList { { "outcome", outcome }, { "mode", mode } });

    public void RecipientRefused(string enhanced) => _refusedRecipients.Add(1, new KeyValuePair<string, object?>("status", enhanced));

    public void StoreAttempt() => _storeAttempts.Add(1);

    public void BreakerOpen(bool open) => Volatile.Write(ref _breakerOpen, open ? 1 : 0);

    public void SessionOpened() => _sessions.Add(1);

    public void SessionClosed() => _sessions.Add(-1);

    public void ConnectionRefused(string reason) => _refusedConnections.Add(1, new KeyValuePair<string, object?>("reason", reason));
}
