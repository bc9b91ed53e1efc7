// Job: tell the envelope sender about recipients that failed for good after Bridge said 250 for the rest:
// an RFC 3464 DSN (DsnBuilder) sent with MAIL FROM:<> through Bridge:Bounces:Relay (the local MTA).
// Never a DSN for a DSN: a message from <> gets none (its failed recipients are only logged, as MTAs do). Also sends
// the success notices RFC 3461's NOTIFY=SUCCESS asks of the final delivery agent.
// Failure: returns false when the DSN could not be handed over; the caller then defers the whole message
// (duplicates over loss) instead of answering 250.
using System.Globalization;
using Bridge.Common;
using Bridge.Delivery.Smtp;
using Microsoft.Extensions.Logging;
using MimeKit;

namespace Bridge.Delivery.Bounces;

public sealed partial class BounceSender(Func<BounceSettings> settings, ILogger<BounceSender> logger)
{
    public static bool TryParseRelay(string relay, out string host, out int port)
    {
        host = "";
        port = 0;
        var colon = relay.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(relay.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
        {
            return false;
        }
        host = relay[..colon].Trim('[', ']');
        return host.Length > 0;
    }

    /// <param name="action">Failed (a non-delivery notice), or a success notice (NOTIFY=SUCCESS): Delivered, Expanded.</param>
    public async Task<bool> SendAsync(DeliveryRequest request, IReadOnlyList<RecipientOutcome> failed, DateTimeOffset arrival,
        CancellationToken cancellationToken, DsnAction action = DsnAction.Failed)
    {
        var delivered = action != DsnAction.Failed;
        if (request.Sender.Length == 0)
        {
            LogNoDsnForDsn(request.QueueId, string.Join(", ", failed.Select(f => f.Recipient.Address)));
            return true;
        }
        var current = settings();
        var endpoint = current.Relay;
        try
        {
            var dsn = DsnBuilder.Build(current.ServerName, request, failed, arrival, action);
            using var bytes = new MemoryStream();
            var format = FormatOptions.Default.Clone();
            format.NewLineFormat = NewLineFormat.Dos;
            await dsn.WriteToAsync(format, bytes, cancellationToken).ConfigureAwait(false);
            var content = new System.Buffers.ReadOnlySequence<byte>(bytes.GetBuffer(), 0, (int)bytes.Length - 2); // without the final CRLF, as SmtpServer hands messages over
            await using var connection = await SmtpConnection.OpenAsync(endpoint, cancellationToken).ConfigureAwait(false);
            var reply = (await connection.SendAsync("", [request.Sender], new Dictionary<string, string>(), default, content, cancellationToken)
                .ConfigureAwait(false))[0];
            await connection.QuitAsync(cancellationToken).ConfigureAwait(false);
            if (reply.IsSuccess)
            {
                LogDsnSent(request.QueueId, action switch { DsnAction.Delivered => "delivery", DsnAction.Expanded => "expansion", _ => "non-delivery" },
                    request.Sender, endpoint, reply);
                return true;
            }
            LogDsnFailed(request.QueueId, endpoint, reply.ToString());
            return false;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogDsnFailed(request.QueueId, endpoint, ex.Message);
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{QueueId}: sender {Kind} notification sent to <{Sender}> via {Relay} ({Reply})")]
    private partial void LogDsnSent(string queueId, string kind, string sender, SmtpEndpoint relay, DeliveryStatus reply);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{QueueId}: could not send the delivery status notification via {Relay}: {Problem}")]
    private partial void LogDsnFailed(string queueId, SmtpEndpoint relay, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{QueueId}: no notification for a message from <> (never a DSN for a DSN); failed for good: {Recipients}")]
    private partial void LogNoDsnForDsn(string queueId, string recipients);
}
