// Job: send each recipient to the agent of the mode in force for it (Bridge:Mode, or the user's own Mode),
// and in Legacy mode with Bridge:Legacy:FallbackToSpool, write the recipients the store still refuses
// temporarily after its budget into their spool instead. Recipients refused for good next to delivered ones
// get a delivery status notification to the sender (BounceSender). One result for the transaction, by
// DeliveryResult.Compose.
// A PerRecipient request (LMTP) is answered recipient by recipient instead: a spool failure does not hold back the
// store's recipients, and no notification is sent (the client has each recipient's status and bounces itself).
// Failure: the agents' statuses; spool recipients are delivered first, so (but for PerRecipient) a spool failure
// defers the message before anything reached the store.
using Bridge.Common;
using Bridge.Delivery.Bounces;
using Bridge.Delivery.Spool;
using Bridge.Delivery.Store;

namespace Bridge.Delivery;

public sealed class DeliveryDispatcher(SpoolDeliveryAgent spool, StoreDeliveryAgent store, BounceSender bounces)
{
    public async Task<DeliveryResult> DeliverAsync(DeliveryRequest request, BridgeMode defaultMode, bool fallbackToSpool,
        CancellationToken cancellationToken)
    {
        var toSpool = request.Recipients.Where(r => (r.User.ModeOverride ?? defaultMode) == BridgeMode.Spool).ToList();
        var toStore = request.Recipients.Where(r => (r.User.ModeOverride ?? defaultMode) == BridgeMode.Legacy).ToList();
        var outcomes = new List<RecipientOutcome>(request.Recipients.Count);

        if (toSpool.Count > 0)
        {
            var spooled = await spool.DeliverAsync(request with { Recipients = toSpool }, cancellationToken).ConfigureAwait(false);
            if (!request.PerRecipient && spooled.Recipients.Any(o => o.Status.IsTransient))
            {
                return spooled with
                {
                    Recipients = [.. spooled.Recipients, .. toStore.Select(r => new RecipientOutcome(r, spooled.Status, "not attempted", 0))],
                };
            }
            outcomes.AddRange(spooled.Recipients);
        }

        if (toStore.Count > 0)
        {
            var stored = await store.DeliverAsync(request with { Recipients = toStore }, cancellationToken).ConfigureAwait(false);
            var retryInSpool = stored.Recipients.Where(o => o.Status.IsTransient).ToList();
            if (fallbackToSpool && retryInSpool.Count > 0)
            {
                var fallback = await spool.DeliverAsync(request with { Recipients = retryInSpool.Select(o => o.Recipient).ToList() },
                    cancellationToken).ConfigureAwait(false);
                stored = stored with
                {
                    Recipients = stored.Recipients.Select(o => o.Status.IsTransient
                        ? fallback.Recipients.First(f => f.Recipient == o.Recipient) with { Relay = $"{o.Relay}, fallback {fallback.Recipients[0].Relay}", Attempts = o.Attempts }
                        : o).ToList(),
                };
            }
            outcomes.AddRange(stored.Recipients);
        }

        var notified = !request.PerRecipient && DeliveryResult.NeedsNotification(outcomes) && await bounces.SendAsync(request,
            outcomes.Where(o => o.Status.IsPermanent).ToList(), DateTimeOffset.Now, cancellationToken).ConfigureAwait(false);
        return DeliveryResult.Compose(request.QueueId, outcomes, notified);
    }
}
