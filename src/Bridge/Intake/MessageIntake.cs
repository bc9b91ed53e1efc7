// Job: the end of DATA. Checks size, bare LFs and the Received count (loops), prepends Received,
// hands the message to Delivery and turns the returned DeliveryStatus into the one reply the client gets; on an LMTP
// session (RFC 2033) into one reply per accepted recipient, in RCPT order, each recipient delivered on its own.
// Logs one line per recipient with the outcome. It speaks Bridge's types only (Envelope.cs); Adapters/MessageStoreAdapter
// is the library's message store that calls it.
// Failure: never throws (in the library a thrown exception becomes a 2xx timeout or a bare 554):
// anything unexpected is logged and answered 451 4.3.0, so the MTA keeps the message queued.
using System.Buffers;
using System.Diagnostics;
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery;
using Bridge.Delivery.Dispatch;
using Bridge.Observability;
using Bridge.Routing;
using Microsoft.Extensions.Logging;

namespace Bridge.Intake;

internal sealed partial class MessageIntake(
    LiveSettings settings, DeliveryDispatcher dispatcher, SessionGate gate, BridgeMetrics metrics, ILogger<MessageIntake> logger)
{
    /// <summary>The reply to <paramref name="message"/>; on an LMTP session also one status per accepted recipient,
    /// in RCPT order.</summary>
    public async Task<MessageVerdict> ReceiveAsync(SessionState session, IncomingMessage message, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var (status, perRecipient) = await DeliverAsync(session, message, started, cancellationToken).ConfigureAwait(false);
        metrics.Transaction(status.Code, status.Enhanced, Stopwatch.GetElapsedTime(started).TotalSeconds);
        return new MessageVerdict(status, session.Lmtp
            ? [.. Enumerable.Range(0, message.Recipients.Count).Select(i => perRecipient is null ? status : perRecipient[i])]
            : null);
    }

    /// <summary>The transaction's reply and, on an LMTP session whose recipients were delivered, each one's status in
    /// RCPT order (null when the message was refused as a whole, or for SMTP).</summary>
    private async Task<(DeliveryStatus Status, IReadOnlyList<DeliveryStatus>? PerRecipient)> DeliverAsync(SessionState session,
        IncomingMessage message, long started, CancellationToken cancellationToken)
    {
        var queueId = QueueId.Next();
        session.DeliveryStarted(gate.DeliveryStarted()); // counted until the reply was written (ReplyTextStream)
        try
        {
            var snapshot = settings.Current;
            var buffer = message.Content;
            var sender = message.Sender is { } from ? EnvelopeAddress.Format(from.User, from.Host) : "";
            if (buffer.Length > snapshot.Options.MaxMessageBytes)
            {
                var tooBig = Replies.TooBig(snapshot.Options.MaxMessageBytes);
                LogRejected(queueId, sender, tooBig);
                return (tooBig, null);
            }

            if (HasBareLineFeed(buffer))
            {
                // Relayed unchanged, "\n.\n" could end the message early at a lenient store (SMTP smuggling).
                var bareLf = Replies.BareLineFeed;
                LogRejected(queueId, sender, bareLf);
                return (bareLf, null);
            }

            var headers = HeaderSummaryReader.Read(buffer);
            if (headers.ReceivedCount > snapshot.Options.MaxReceivedHeaders)
            {
                var loop = Replies.Loop(headers.ReceivedCount);
                LogRejected(queueId, sender, loop);
                return (loop, null);
            }

            var perRcpt = new List<IReadOnlyList<RoutedRecipient>>(message.Recipients.Count); // what each RCPT reached, in RCPT order
            foreach (var (key, to) in message.Recipients)
            {
                if (!session.Routes.TryGetValue(key, out var routed))
                {
                    var route = snapshot.Routing.Resolve(to.User, to.Host);
                    if (!route.IsAccepted)
                    {
                        return (Replies.NotRoutedAgain(to.AsText()), null);
                    }
                    routed = route.Recipients;
                }
                perRcpt.Add(routed);
            }
            var recipients = perRcpt.SelectMany(r => r).ToList();

            var received = ReceivedHeader.Build(session.HeloName, session.Client?.Address.ToString(),
                snapshot.Options.ServerName, session.Lmtp ? "LMTP" : session.Esmtp ? "ESMTP" : "SMTP", queueId,
                message.Recipients.Select(t => EnvelopeAddress.Format(t.Address.User, t.Address.Host)).ToList(), DateTimeOffset.Now);
            var request = new DeliveryRequest(queueId, sender, recipients, received, buffer, headers,
                message.Parameters, PerRecipient: session.Lmtp);

            var result = await DeliverWithinLimitAsync(request, snapshot.Options, cancellationToken).ConfigureAwait(false);
            var delay = Stopwatch.GetElapsedTime(started).TotalSeconds;
            foreach (var outcome in result.Recipients)
            {
                var status = outcome.Status;
                var mode = outcome.Recipient.User.ModeIn(snapshot.Options.Mode);
                var word = status.IsSuccess ? "sent" : status.IsTransient ? "deferred" : "bounced";
                LogDelivery(queueId, sender, outcome.Recipient.DeliveredTo, outcome.Recipient.Address, mode, outcome.Relay, delay,
                    outcome.Attempts, word, status);
                metrics.Recipient(word, mode.ToString());
            }
            return (result.Status, session.Lmtp ? perRcpt.Select(r => StatusOf(result, queueId, r)).ToList() : null);
        }
#pragma warning disable CA1031 // the one place every unexpected failure must become a reply, not an exception
        catch (Exception ex)
#pragma warning restore CA1031
        {
            LogUnexpected(ex, queueId);
            return (Replies.Unexpected, null);
        }
    }

    /// <summary>The dispatcher's result, or 451 4.3.0 once Bridge:DeliveryTimeout has passed: the delivery is
    /// cancelled then (no lock is waited for and nothing is written any more), and should something not return at
    /// all (a system call that hangs), the client is answered anyway and the session goes on.</summary>
    private async Task<DeliveryResult> DeliverWithinLimitAsync(DeliveryRequest request, BridgeOptions options, CancellationToken cancellationToken)
    {
        var limit = options.EffectiveDeliveryTimeout;
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.CancelAfter(limit);
        var delivering = dispatcher.DeliverAsync(request, options.Mode, options.Legacy.FallbackToSpool, timer.Token);
        var timedOut = Replies.DeliveryTimedOut(limit);
        DeliveryResult result;
        try
        {
            result = await delivering.WaitAsync(limit + TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            LogHung(request.QueueId, limit.TotalSeconds);
            _ = delivering.ContinueWith(t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            return new DeliveryResult(timedOut, request.Recipients.Select(r => new RecipientOutcome(r, timedOut, "timed out", 0)).ToList());
        }
        if (timer.IsCancellationRequested && !cancellationToken.IsCancellationRequested && !result.Status.IsSuccess)
        {
            return new DeliveryResult(timedOut, result.Recipients.Select(o => o.Status.IsSuccess || o.Status.IsPermanent ? o : o with { Status = timedOut }).ToList());
        }
        return result;
    }

    /// <summary>One RCPT's status: its recipient's own (found by the very object routing made for it; equal ones share
    /// it), or for an alias its members' composed by DeliveryResult's rule (no notification is sent over LMTP).</summary>
    private static DeliveryStatus StatusOf(DeliveryResult result, string queueId, IReadOnlyList<RoutedRecipient> rcpt)
    {
        var outcomes = rcpt.Select(r => result.Recipients.FirstOrDefault(o => ReferenceEquals(o.Recipient, r))
            ?? result.Recipients.FirstOrDefault(o => o.Recipient == r)).OfType<RecipientOutcome>().ToList();
        return outcomes.Count == 0 ? result.Status : DeliveryResult.Compose(queueId, outcomes).Status;
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "{QueueId}: the delivery did not return within Bridge:DeliveryTimeout ({Limit:0} s) and 5 s more; answered 451 4.3.0")]
    private partial void LogHung(string queueId, double limit);

    private static bool HasBareLineFeed(ReadOnlySequence<byte> message)
    {
        var previous = (byte)0; // the CRLF before the message belongs to the DATA command
        foreach (var segment in message)
        {
            var span = segment.Span;
            for (var at = span.IndexOf((byte)'\n'); at >= 0; at = NextLf(span, at))
            {
                var before = at == 0 ? previous : span[at - 1];
                if (before != (byte)'\r')
                {
                    return true;
                }
            }
            if (span.Length > 0)
            {
                previous = span[^1];
            }
        }
        return false;

        static int NextLf(ReadOnlySpan<byte> span, int at)
        {
            var next = span[(at + 1)..].IndexOf((byte)'\n');
            return next < 0 ? -1 : at + 1 + next;
        }
    }

    [LoggerMessage(Level = LogLevel.Information,
        Message = "{QueueId}: from=<{Sender}>, to=<{Recipient}>, orig_to=<{OriginalRecipient}>, mode={Mode}, relay={Relay}, delay={Delay:0.000}, attempts={Attempts}, status={Outcome} ({Reply})")]
    private partial void LogDelivery(string queueId, string sender, string recipient, string originalRecipient,
        BridgeMode mode, string relay, double delay, int attempts, string outcome, DeliveryStatus reply);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{QueueId}: from=<{Sender}>, rejected: {Reply}")]
    private partial void LogRejected(string queueId, string sender, DeliveryStatus reply);

    [LoggerMessage(Level = LogLevel.Error, Message = "{QueueId}: unexpected failure, answered 451 4.3.0")]
    private partial void LogUnexpected(Exception exception, string queueId);
}
