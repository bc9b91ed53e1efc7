// Job: Legacy mode: relay a message to the mail store with its original envelope and bytes (plus Bridge's
// Received header), through StorePipeline. Each attempt sends only to the recipients that do not have a final
// answer yet, so a mixed LMTP outcome retries just the temporary failures and never delivers a copy twice.
// What is retried (within Bridge:Retry:Budget): connection failures, attempts without an answer, and a store's 4xx
// for a recipient except "mailbox full" (X.2.2); every failed attempt is logged. Never retried: a 5xx (passed back
// as-is), and a message the store received without acknowledging it (StoreOutcomeUnknownException): that one is
// answered 451 4.4.1 "outcome unknown", since sending it again could deliver it twice.
// Failure: never throws for a delivery problem. Still failing after the budget or while the breaker is open:
// 451 4.4.1 for those recipients (the store's own 4xx text when it gave one).
using System.Diagnostics;
using Bridge.Common;
using Bridge.Delivery.Smtp;
using Bridge.Observability;
using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Bridge.Delivery.Store;

public sealed partial class StoreDeliveryAgent(
    Func<StoreSettings> settings, StoreConnectionPool pool, BridgeMetrics metrics, ILogger<StoreDeliveryAgent> logger) : IDeliveryAgent
{
    private readonly Lock _gate = new();
    private StorePipeline? _pipeline;

    public async Task<DeliveryResult> DeliverAsync(DeliveryRequest request, CancellationToken cancellationToken)
    {
        var current = settings();
        var endpoint = current.Endpoint;
        var pipeline = PipelineFor(current.Retry);
        var recipients = request.Recipients;
        var statuses = new DeliveryStatus?[recipients.Count];
        var settled = new bool[recipients.Count]; // a final answer: 2xx, 5xx, a 4xx that is not retried, or an unknown outcome
        var attempts = 0;
        string? lastProblem = null;

        async ValueTask<AttemptResult> AttemptAsync(CancellationToken attemptToken)
        {
            attempts++;
            metrics.StoreAttempt();
            var open = Enumerable.Range(0, recipients.Count).Where(i => !settled[i]).ToList();
            // Each store address once (two aliases may reach the same user); every recipient gets its address's reply.
            var addresses = open.Select(i => recipients[i].StoreAddress).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
            int Sent(int k) => addresses.FindIndex(a => string.Equals(a, recipients[open[k]].StoreAddress, StringComparison.OrdinalIgnoreCase));
            try
            {
                var replies = await SendAsync(endpoint, request, addresses, attemptToken).ConfigureAwait(false);
                for (var k = 0; k < open.Count; k++)
                {
                    var reply = replies[Sent(k)];
                    statuses[open[k]] = reply;
                    settled[open[k]] = !reply.IsTransient || !IsWorthRetrying(reply);
                }
                var deferred = open.Where(i => !settled[i]).ToList();
                if (deferred.Count > 0)
                {
                    lastProblem = string.Join(", ", deferred.Select(i => $"<{recipients[i].Address}> {statuses[i]}"));
                    LogAttemptFailed(request.QueueId, endpoint, attempts, $"deferred by the store: {lastProblem}");
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
                    statuses[open[k]] = Sent(k) < ex.Known.Count && ex.Known[Sent(k)] is { } reply ? reply : unknown;
                    settled[open[k]] = true;
                }
                LogOutcomeUnknown(request.QueueId, endpoint, attempts, ex.Message);
                return new AttemptResult(0);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && attemptToken.IsCancellationRequested)
            {
                lastProblem = $"no answer within {current.Retry.AttemptTimeout.TotalSeconds:0.#} s";
                LogAttemptFailed(request.QueueId, endpoint, attempts, lastProblem);
                throw;
            }
            catch (Exception ex) when (NetworkFailure.IsTransient(ex) && !cancellationToken.IsCancellationRequested)
            {
                lastProblem = ex is TimeoutRejectedException ? $"no answer within {current.Retry.AttemptTimeout.TotalSeconds:0.#} s" : ex.Message;
                LogAttemptFailed(request.QueueId, endpoint, attempts, lastProblem);
                throw;
            }
        }

        try
        {
            await pipeline.Pipeline.ExecuteAsync(AttemptAsync, cancellationToken).ConfigureAwait(false);
        }
        catch (BrokenCircuitException)
        {
            lastProblem = "the circuit breaker is open after repeated failures";
        }
        catch (TimeoutRejectedException)
        {
            lastProblem = $"still failing after the retry budget of {current.Retry.Budget.TotalSeconds:0.#} s" +
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

        var unavailable = new DeliveryStatus(451, "4.4.1",
            $"Mail store {endpoint} unavailable after {attempts} attempt(s): {lastProblem ?? "no answer"}");
        var outcomes = recipients.Select((r, i) => new RecipientOutcome(r, statuses[i] ?? unavailable, endpoint.ToString(), attempts))
            .ToList();
        return DeliveryResult.Compose(request.QueueId, outcomes);
    }

    /// <summary>A store's 4xx is retried within the budget (it is usually momentary: a restart, a lock, Dovecot's
    /// "temporary internal error", 4.5.3 too many recipients), except when the store says the condition will not clear
    /// in seconds: a full mailbox (X.2.2). That one goes back to the MTA at once, whose queue waits minutes.</summary>
    internal static bool IsWorthRetrying(DeliveryStatus status) => status.IsTransient && !status.Enhanced.EndsWith(".2.2", StringComparison.Ordinal);

    /// <summary>One transaction on a pooled connection; a reused connection the store has closed meanwhile is
    /// replaced once, inside the same attempt, before anything was sent on it.</summary>
    private async Task<IReadOnlyList<DeliveryStatus>> SendAsync(SmtpEndpoint endpoint, DeliveryRequest request,
        IReadOnlyList<string> addresses, CancellationToken cancellationToken)
    {
        var dsn = addresses.Select(a => DsnParameters(request.Recipients.First(r => string.Equals(r.StoreAddress, a, StringComparison.OrdinalIgnoreCase))))
            .ToList();
        await using var lease = await pool.RentAsync(endpoint, cancellationToken).ConfigureAwait(false);
        try
        {
            return await lease.Connection.SendAsync(request.Sender, addresses, request.MailParameters, request.ReceivedHeader,
                request.Message, cancellationToken, dsn).ConfigureAwait(false);
        }
        catch (Exception ex) when (lease.Reused && lease.Connection.RepliesInTransaction == 0 && NetworkFailure.IsTransient(ex))
        {
            await lease.ReconnectAsync(cancellationToken).ConfigureAwait(false);
            return await lease.Connection.SendAsync(request.Sender, addresses, request.MailParameters, request.ReceivedHeader,
                request.Message, cancellationToken, dsn).ConfigureAwait(false);
        }
    }

    /// <summary>The RCPT's NOTIFY and ORCPT for the store (when it offers DSN); an alias's member without ORCPT gets the
    /// alias as its ORCPT, so the store's Delivered-To/sieve and notices see the address the mail was sent to.</summary>
    private static string? DsnParameters(RoutedRecipient recipient)
    {
        var orcpt = recipient.Orcpt ?? (recipient.Alias is null ? null : $"rfc822;{Xtext.Encode(recipient.Address)}");
        var parts = new[] { recipient.Notify is { } notify ? $"NOTIFY={notify}" : null, orcpt is null ? null : $"ORCPT={orcpt}" };
        return parts.Any(p => p is not null) ? string.Join(' ', parts.OfType<string>()) : null;
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
                    metrics.BreakerOpen(state == CircuitState.Open);
                    return ValueTask.CompletedTask;
                });
            }
            return _pipeline;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{QueueId}: store {Store} attempt {Attempt} failed: {Problem}")]
    private partial void LogAttemptFailed(string queueId, SmtpEndpoint store, int attempt, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{QueueId}: store {Store} attempt {Attempt}: outcome unknown, not resent: {Problem}")]
    private partial void LogOutcomeUnknown(string queueId, SmtpEndpoint store, int attempt, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Mail store circuit breaker is now {State}")]
    private partial void LogBreaker(CircuitState state);
}
