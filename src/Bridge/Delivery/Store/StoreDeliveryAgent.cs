// Job: Legacy mode: relay a message to the mail store with its original envelope and bytes (plus Bridge's
// Received header) through StoreClient, the one relay path with its retries, breaker and outcome-unknown rule; each
// recipient is given to the store by its StoreAddress, with NOTIFY/ORCPT (an alias's member gets the alias as ORCPT).
// Failure: never throws for a delivery problem: StoreClient's answer for each recipient becomes its outcome (still
// failing after the budget or while the breaker is open: 451 4.4.1, the store's own 4xx text when it gave one).
using Bridge.Common;

namespace Bridge.Delivery.Store;

public sealed class StoreDeliveryAgent(StoreClient client) : IDeliveryAgent
{
    public async Task<DeliveryResult> DeliverAsync(DeliveryRequest request, CancellationToken cancellationToken)
    {
        var relay = new StoreRelay(request.QueueId, request.Sender,
            request.Recipients.Select(r => new StoreRecipient(r.StoreAddress, DsnParameters(r))).ToList(),
            request.MailParameters, request.ReceivedHeader, request.Message);
        var result = await client.RelayAsync(relay, StoreRetries.AsConfigured, cancellationToken).ConfigureAwait(false);
        var outcomes = request.Recipients.Select((r, i) => new RecipientOutcome(r, result.Replies[i].Status, result.Endpoint.ToString(), result.Attempts))
            .ToList();
        return DeliveryResult.Compose(request.QueueId, outcomes);
    }

    /// <summary>The RCPT's NOTIFY and ORCPT for the store (when it offers DSN); an alias's member without ORCPT gets the
    /// alias as its ORCPT, so the store's Delivered-To/sieve and notices see the address the mail was sent to.</summary>
    private static string? DsnParameters(RoutedRecipient recipient)
    {
        var orcpt = recipient.Orcpt ?? (recipient.Alias is null ? null : $"rfc822;{Xtext.Encode(recipient.Address)}");
        var parts = new[] { recipient.Notify is { } notify ? $"NOTIFY={notify}" : null, orcpt is null ? null : $"ORCPT={orcpt}" };
        return parts.Any(p => p is not null) ? string.Join(' ', parts.OfType<string>()) : null;
    }
}
