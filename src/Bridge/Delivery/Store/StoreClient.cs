// Job: the one way Bridge relays a message to the mail store (Legacy): delivery (StoreDeliveryAgent), `drain` and the
// collectors (after fallback, at login) all send through it, so they share one set of rules: a pooled connection
// (StoreConnectionPool, at most Bridge:Legacy:MaxConnections in all), a reused connection the store closed meanwhile
// replaced once before anything was sent on it, each store address sent once, each attempt only to the recipients
// without a final answer, the policies of Bridge:Retry (StorePipeline: per-attempt timeout, retries with backoff within
// the budget, one circuit breaker for everyone who relays, fed only by relays that could not reach the store: never by a
// store's reply), and the outcome-unknown rule: a message that went out and
// was not acknowledged is never sent again by Bridge (RFC 1047: duplicates over loss, but not by Bridge's own hand).
// What is retried: connection failures, attempts without an answer, and a store's 4xx for a recipient except
// "mailbox full" (X.2.2). Never retried: a 5xx. A collection makes one attempt per message (Once): its caller
// retries the whole collection later (the next round, the next login), and a login must not wait out a backoff; it
// waits for the store's answer as an SMTP client does (StorePipeline: up to 10 minutes, not Bridge:Retry's limits: a
// slow store must not get the same message once per round), for a connection at most AttemptTimeout like every
// relay, has a delivery's limits when it is the breaker's trial call, and is not logged here (its caller logs its
// own line).
// Failure: never throws for a store problem; each recipient's answer says whether the store gave it (Replied), the
// store may have the message (OutcomeUnknown, 451 4.4.1), or the store could not be reached within the policy
// (Unavailable, 451 4.4.1 with the last problem; also when the caller's token ends the relay: "Bridge is shutting
// down", and the caller, who knows why it stopped, may throw instead).
using System.Buffers;
using Bridge.Common;
using Bridge.Delivery.Smtp;
using Bridge.Observability;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Bridge.Delivery.Store;

/// <param name="Address">The address the store is given (RCPT/RCPT TO).</param>
/// <param name="Dsn">NOTIFY=/ORCPT= for the store when it offers DSN, or null.</param>
public sealed record StoreRecipient(string Address, string? Dsn);

/// <param name="Id">Names the message in the log (Bridge's queue id, or the mailbox a collection reads).</param>
public sealed record StoreRelay(string Id, string Sender, IReadOnlyList<StoreRecipient> Recipients, IReadOnlyDictionary<string, string> MailParameters,
    ReadOnlyMemory<byte> ReceivedHeader, ReadOnlySequence<byte> Message);

public enum StoreAnswer
{
    /// <summary>The store's own reply for this recipient.</summary>
    Replied,

    /// <summary>The message went out and no reply came: the store may have it; not sent again.</summary>
    OutcomeUnknown,

    /// <summary>No answer from the store within the policy (down, breaker open, budget spent, Bridge stopping).</summary>
    Unavailable,
}

public readonly record struct StoreReply(DeliveryStatus Status, StoreAnswer Answer);

/// <param name="Replies">One per StoreRelay recipient, in its order.</param>
/// <param name="Problem">The last thing that went wrong (for a log line), or null.</param>
public sealed record StoreRelayResult(IReadOnlyList<StoreReply> Replies, int Attempts, SmtpEndpoint Endpoint, string? Problem);

public enum StoreRetries
{
    /// <summary>Bridge:Retry as configured: a delivery, whose client waits for the answer.</summary>
    AsConfigured,

    /// <summary>One attempt (with its timeout and the breaker): a collection, which is retried as a whole.</summary>
    Once,
}

public sealed partial class StoreClient(Func<StoreSettings> settings, StoreConnectionPool pool, BridgeMetrics? metrics, ILogger logger)
{
    private static readonly ResiliencePropertyKey<bool> NoRetry = new("Bridge.NoRetry");
    private static readonly ResiliencePropertyKey<bool> Testing = new("Bridge.BreakerTesting");

    private readonly Lock _gate = new();
    private StorePipeline? _pipeline;

    public async Task<StoreRelayResult> RelayAsync(StoreRelay relay, StoreRetries retries, CancellationToken cancellationToken)
    {
        var current = settings();
        var endpoint = current.Endpoint;
        var pipeline = PipelineFor(current.Retry);
        // While the breaker is not closed, the next relay is its trial call (half-open) and everyone else is refused
        // until it ends: a collection may be that call (on a quiet system no delivery may come for long), but then
        // with a delivery's time limits, not the patience a collection has otherwise.
        var testing = pipeline.Breaker.CircuitState != CircuitState.Closed;
        // A relay with a delivery's limits waits for a connection within its attempt timeout already; a collection
        // (which holds its user's mailbox locks meanwhile) gets that bound for the connection alone.
        TimeSpan? connectWithin = retries == StoreRetries.Once && !testing ? current.Retry.AttemptTimeout : null;
        var recipients = relay.Recipients;
        var replies = new StoreReply?[recipients.Count];
        var settled = new bool[recipients.Count]; // a final answer: 2xx, 5xx, a 4xx that is not retried, or an unknown outcome
        var attempts = 0;
        string? lastProblem = null;

        async ValueTask<AttemptResult> AttemptAsync(CancellationToken attemptToken)
        {
            attempts++;
            metrics?.StoreAttempt();
            var open = Enumerable.Range(0, recipients.Count).Where(i => !settled[i]).ToList();
            // Each store address once (two aliases may reach the same user); every recipient gets its address's reply.
            var addresses = open.Select(i => recipients[i].Address).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
            int Sent(int k) => addresses.FindIndex(a => string.Equals(a, recipients[open[k]].Address, StringComparison.OrdinalIgnoreCase));
            try
            {
                var answers = await SendAsync(endpoint, relay, addresses, connectWithin, attemptToken).ConfigureAwait(false);
                for (var k = 0; k < open.Count; k++)
                {
                    var reply = answers[Sent(k)];
                    replies[open[k]] = new StoreReply(reply, StoreAnswer.Replied);
                    settled[open[k]] = !reply.IsTransient || !IsWorthRetrying(reply);
                }
                var deferred = open.Where(i => !settled[i]).ToList();
                if (deferred.Count > 0)
                {
                    lastProblem = string.Join(", ", deferred.Select(i => $"<{recipients[i].Address}> {replies[i]!.Value.Status}"));
                    LogAttemptFailed(retries, relay.Id, endpoint, attempts, $"deferred by the store: {lastProblem}");
                }
                return new AttemptResult(deferred.Count);
            }
            catch (StoreOutcomeUnknownException ex)
            {
                // The message went out and no reply came: the store may have it. Never sent again by Bridge.
                var unknown = new DeliveryStatus(451, "4.4.1",
                    $"Mail store {endpoint}: outcome unknown, the message was sent but not acknowledged ({ex.Message}); not resent by Bridge");
                for (var k = 0; k < open.Count; k++)
                {
                    replies[open[k]] = Sent(k) < ex.Known.Count && ex.Known[Sent(k)] is { } reply
                        ? new StoreReply(reply, StoreAnswer.Replied)
                        : new StoreReply(unknown, StoreAnswer.OutcomeUnknown);
                    settled[open[k]] = true;
                }
                if (retries == StoreRetries.AsConfigured)
                {
                    LogOutcomeUnknown(relay.Id, endpoint, attempts, ex.Message);
                }
                lastProblem = ex.Message;
                return new AttemptResult(0);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && attemptToken.IsCancellationRequested)
            {
                lastProblem = $"no answer within {current.Retry.AttemptTimeout.TotalSeconds:0.#} s";
                LogAttemptFailed(retries, relay.Id, endpoint, attempts, lastProblem);
                throw;
            }
            catch (Exception ex) when (NetworkFailure.IsTransient(ex) && !cancellationToken.IsCancellationRequested)
            {
                lastProblem = ex is TimeoutRejectedException ? $"no answer within {current.Retry.AttemptTimeout.TotalSeconds:0.#} s" : ex.Message;
                LogAttemptFailed(retries, relay.Id, endpoint, attempts, lastProblem);
                throw;
            }
        }

        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        context.Properties.Set(NoRetry, retries == StoreRetries.Once);
        context.Properties.Set(Testing, testing);
        try
        {
            await pipeline.Pipeline.ExecuteAsync(static (ctx, attempt) => attempt(ctx.CancellationToken), context,
                (Func<CancellationToken, ValueTask<AttemptResult>>)AttemptAsync).ConfigureAwait(false);
        }
        catch (BrokenCircuitException)
        {
            lastProblem = "the circuit breaker is open after repeated failures";
        }
        catch (TimeoutRejectedException)
        {
            lastProblem = (retries == StoreRetries.Once && !testing
                              ? $"no answer within {StorePipeline.CollectionPatience.TotalMinutes:0} minutes"
                              : $"still failing after the retry budget of {current.Retry.Budget.TotalSeconds:0.#} s") +
                          (lastProblem is null ? "" : $" ({lastProblem})");
        }
        catch (Exception ex) when (NetworkFailure.IsTransient(ex))
        {
            lastProblem ??= ex.Message;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            lastProblem = "Bridge is shutting down";
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }

        var unavailable = new StoreReply(new DeliveryStatus(451, "4.4.1",
            $"Mail store {endpoint} unavailable after {attempts} attempt(s): {lastProblem ?? "no answer"}"), StoreAnswer.Unavailable);
        return new StoreRelayResult(replies.Select(r => r ?? unavailable).ToList(), attempts, endpoint, lastProblem ?? (replies.Any(r => r is null) ? "no answer" : null));
    }

    /// <summary>A store's 4xx is retried within the budget (it is usually momentary: a restart, a lock, Dovecot's
    /// "temporary internal error", 4.5.3 too many recipients), except when the store says the condition will not clear
    /// in seconds: a full mailbox (X.2.2). That one goes back to the MTA at once, whose queue waits minutes.</summary>
    internal static bool IsWorthRetrying(DeliveryStatus status) => status.IsTransient && !status.Enhanced.EndsWith(".2.2", StringComparison.Ordinal);

    /// <summary>Whether Polly may try again after this attempt: never for a relay asked to go Once.</summary>
    internal static bool MayRetry(ResilienceContext context) => !context.Properties.GetValue(NoRetry, false);

    /// <summary>Whether a relay has a delivery's time limits: every delivery, and a collection made while the breaker
    /// was not closed (it may be the breaker's trial call).</summary>
    internal static bool HasDeliveryLimits(ResilienceContext context) => MayRetry(context) || context.Properties.GetValue(Testing, false);

    /// <summary>One transaction on a pooled connection; a reused connection the store has closed meanwhile is
    /// replaced once, inside the same attempt, before anything was sent on it. A connection (a free slot of the pool,
    /// then connecting and the greeting, and so the replacement too) is waited for at most <paramref name="connectWithin"/>
    /// when set (a collection, whose transaction has no attempt timeout); else <paramref name="cancellationToken"/>, the
    /// attempt's, bounds it.</summary>
    private async Task<IReadOnlyList<DeliveryStatus>> SendAsync(SmtpEndpoint endpoint, StoreRelay relay, IReadOnlyList<string> addresses,
        TimeSpan? connectWithin, CancellationToken cancellationToken)
    {
        var dsn = addresses.Select(a => relay.Recipients.First(r => string.Equals(r.Address, a, StringComparison.OrdinalIgnoreCase)).Dsn).ToList();
        await using var lease = await ConnectWithinAsync(endpoint, connectWithin, token => pool.RentAsync(endpoint, token), cancellationToken).ConfigureAwait(false);
        try
        {
            return await lease.Connection.SendAsync(relay.Sender, addresses, relay.MailParameters, relay.ReceivedHeader,
                relay.Message, cancellationToken, dsn).ConfigureAwait(false);
        }
        catch (Exception ex) when (lease.Reused && lease.Connection.RepliesInTransaction == 0 && NetworkFailure.IsTransient(ex))
        {
            await ConnectWithinAsync(endpoint, connectWithin, async token => { await lease.ReconnectAsync(token).ConfigureAwait(false); return lease; },
                cancellationToken).ConfigureAwait(false);
            return await lease.Connection.SendAsync(relay.Sender, addresses, relay.MailParameters, relay.ReceivedHeader,
                relay.Message, cancellationToken, dsn).ConfigureAwait(false);
        }
    }

    /// <summary><paramref name="connect"/> within <paramref name="within"/> (null: as the caller's token allows); past it, a
    /// connection failure (the store not reached).</summary>
    private static async Task<T> ConnectWithinAsync<T>(SmtpEndpoint endpoint, TimeSpan? within, Func<CancellationToken, Task<T>> connect,
        CancellationToken cancellationToken)
    {
        if (within is not { } limit)
        {
            return await connect(cancellationToken).ConfigureAwait(false);
        }
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        waiting.CancelAfter(limit);
        try
        {
            return await connect(waiting.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (waiting.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new SmtpConnectionException($"{endpoint}: no connection within {limit.TotalSeconds:0.#} s " +
                "(all Bridge:Legacy:MaxConnections in use, or the store does not greet)");
        }
    }

    private StorePipeline PipelineFor(StoreRetry retry)
    {
        lock (_gate)
        {
            if (_pipeline is null || _pipeline.Options != retry)
            {
                _pipeline = StorePipeline.Build(retry, state =>
                {
                    LogBreaker(state);
                    metrics?.BreakerOpen(state == CircuitState.Open);
                    return ValueTask.CompletedTask;
                });
            }
            return _pipeline;
        }
    }

    /// <summary>A delivery's failed attempt is logged here; a collection's caller writes its own line for it.</summary>
    private void LogAttemptFailed(StoreRetries retries, string queueId, SmtpEndpoint store, int attempt, string problem)
    {
        if (retries == StoreRetries.AsConfigured)
        {
            LogAttemptFailed(queueId, store, attempt, problem);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{QueueId}: store {Store} attempt {Attempt} failed: {Problem}")]
    private partial void LogAttemptFailed(string queueId, SmtpEndpoint store, int attempt, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{QueueId}: store {Store} attempt {Attempt}: outcome unknown, not resent: {Problem}")]
    private partial void LogOutcomeUnknown(string queueId, SmtpEndpoint store, int attempt, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Mail store circuit breaker is now {State}")]
    private partial void LogBreaker(CircuitState state);
}
