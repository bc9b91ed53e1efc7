// Job: build the Polly pipeline for store attempts from Bridge:Retry: a total Budget timeout around a circuit
// breaker around exponential retry with jitter around a per-attempt timeout. Retried: connection-level failures,
// attempt timeouts, and attempts that left recipients with a 4xx. A 5xx is never retried, nor anything of a relay
// StoreClient was asked to make once (a collection), whose time limit is CollectionPatience instead. The breaker
// counts a relay whose last attempt could not reach the store (a connection refused, broken before the message went,
// or not made in time; an attempt that timed out), never a store's reply: a 4xx for a recipient is about that user's
// mail (a local user can make the store defer their own mail at will, and must not be able to stop everyone's by it).
// Not counted either: an outcome unknown (the message went out) and a relay ended by the budget, which sits outside
// the breaker. Every relay obeys an open breaker.
// Failure: the pipeline throws BrokenCircuitException (open breaker), TimeoutRejectedException (budget) or
// the last transient exception; StoreClient turns each into 451 4.4.1.
using Bridge.Delivery.Smtp;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Bridge.Delivery.Store;

/// <summary>Result of one attempt: how many recipients still have a temporary failure.</summary>
internal readonly record struct AttemptResult(int StillTransient);

internal sealed record StorePipeline(StoreRetry Options, ResiliencePipeline<AttemptResult> Pipeline, CircuitBreakerStateProvider Breaker)
{
    public static StorePipeline Build(StoreRetry options, Func<CircuitState, ValueTask> onBreakerChange)
    {
        var shouldHandle = new PredicateBuilder<AttemptResult>()
            .Handle<Exception>(NetworkFailure.IsTransient)
            .HandleResult(r => r.StillTransient > 0);
        Func<RetryPredicateArguments<AttemptResult>, ValueTask<bool>> retryHandle = shouldHandle;
        var breaker = new CircuitBreakerStateProvider();
        var pipeline = new ResiliencePipelineBuilder<AttemptResult>()
            .AddTimeout(new TimeoutStrategyOptions { Timeout = options.Budget, TimeoutGenerator = args => Limit(args.Context, options.Budget) })
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<AttemptResult>
            {
                FailureRatio = 1.0,
                MinimumThroughput = options.BreakAfterFailures,
                SamplingDuration = TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(30).Ticks, options.Budget.Ticks * 2)),
                BreakDuration = options.BreakDuration,
                // The store not reached, not a store's answer: a recipient's 4xx is about one user's mail.
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } failure && NetworkFailure.IsTransient(failure)),
                StateProvider = breaker,
                OnOpened = _ => onBreakerChange(CircuitState.Open),
                OnClosed = _ => onBreakerChange(CircuitState.Closed),
            })
            .AddRetry(new RetryStrategyOptions<AttemptResult>
            {
                MaxRetryAttempts = Math.Max(1, options.MaxAttempts - 1),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.BaseDelay,
                MaxDelay = options.MaxDelay,
                ShouldHandle = options.MaxAttempts > 1
                    ? args => StoreClient.MayRetry(args.Context) ? retryHandle(args) : ValueTask.FromResult(false)
                    : _ => ValueTask.FromResult(false),
            })
            .AddTimeout(new TimeoutStrategyOptions { Timeout = options.AttemptTimeout, TimeoutGenerator = args => Limit(args.Context, options.AttemptTimeout) })
            .Build();
        return new StorePipeline(options, pipeline, breaker);
    }

    /// <summary>How long a collection waits for one message's transaction: what RFC 5321 (4.5.3.2.6) gives a client
    /// for the reply to the message, the longest of its timeouts. Long enough for any store that still works.</summary>
    public static readonly TimeSpan CollectionPatience = TimeSpan.FromMinutes(10);

    /// <summary>A delivery's time limits; a collection's (StoreRetries.Once) is CollectionPatience, not Bridge:Retry's: a
    /// slow store that takes long over one message must not see it again and again as "outcome unknown" (a copy per
    /// round), but a store that never answers must not hold the collection, and its user's mailbox locks, for ever.
    /// A collection that may be the breaker's trial call has a delivery's limits (everyone waits for that call).</summary>
    private static ValueTask<TimeSpan> Limit(ResilienceContext context, TimeSpan limit) =>
        ValueTask.FromResult(StoreClient.HasDeliveryLimits(context) ? limit : CollectionPatience);

}
