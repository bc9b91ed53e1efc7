// Job: what Legacy delivery runs with: the store's endpoint and the retry policy, as comparable values built from
// the configuration in one place (Hosting/SettingsSnapshot); a reload affects the next delivery only.
// Failure: none; values only (validated with the configuration before they are built).
using Bridge.Delivery.Smtp;

namespace Bridge.Delivery.Store;

/// <summary>Polly policies for the store: per-attempt timeout inside exponential retry with jitter inside a circuit
/// breaker, inside a total budget (Bridge:Retry:*). Records compare by value: an unchanged policy keeps its breaker.</summary>
public sealed record StoreRetry(
    int MaxAttempts,
    TimeSpan BaseDelay,
    TimeSpan MaxDelay,
    TimeSpan AttemptTimeout,
    TimeSpan Budget,
    int BreakAfterFailures,
    TimeSpan BreakDuration);

public sealed record StoreSettings(SmtpEndpoint Endpoint, StoreRetry Retry);
