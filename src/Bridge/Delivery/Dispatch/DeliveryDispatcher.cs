// Job: send each recipient to the agent of the mode in force for it (Bridge:Mode, or the user's own Mode),
// and in Legacy mode with Bridge:Legacy:FallbackToSpool, write the recipients the store still refuses
// temporarily after its budget into their spool instead (a spool that refuses them for good leaves the store's
// temporary answer: a fallback never bounces what the store only deferred). Recipients refused for good next to delivered ones
// get a delivery status notification to the sender (BounceSender), unless their RCPT's NOTIFY says otherwise (RFC
// 3461); recipients written to the spool with NOTIFY=SUCCESS get a delivery notice, and an alias of several users
// whose RCPT asked NOTIFY=SUCCESS one "expanded" notice for the alias itself. One result for the transaction,
// by DeliveryResult.Compose.
// A PerRecipient request (LMTP) is answered RCPT by RCPT instead: a spool failure holds back only the store's
// recipients of the same RCPT (an alias's members, answered together), and no notification is sent (the client has
// each RCPT's status and bounces itself).
// Failure: the agents' statuses; spool recipients are delivered first, so (but for PerRecipient) a spool failure
// defers the message before anything reached the store.
using Bridge.Common;
using Bridge.Delivery.Bounces;
using Bridge.Delivery.Spool;
using Bridge.Delivery.Store;

namespace Bridge.Delivery.Dispatch;

public sealed class DeliveryDispatcher
{
    private readonly IDeliveryAgent spool;
    private readonly IDeliveryAgent store;
    private readonly Notifier notify;

    public DeliveryDispatcher(SpoolDeliveryAgent spool, StoreDeliveryAgent store, BounceSender bounces)
        : this(spool, store, bounces.SendAsync)
    {
    }

    /// <summary>For the unit tests: any two agents, and a stand-in for BounceSender.SendAsync.</summary>
    internal DeliveryDispatcher(IDeliveryAgent spool, IDeliveryAgent store, Notifier notify)
    {
        this.spool = spool;
        this.store = store;
        this.notify = notify;
    }

    /// <summary>BounceSender.SendAsync's shape: true once the notification is handed on.</summary>
    internal delegate Task<bool> Notifier(DeliveryRequest request, IReadOnlyList<RecipientOutcome> outcomes, DateTimeOffset arrival,
        CancellationToken cancellationToken, DsnAction action = DsnAction.Failed);

    public async Task<DeliveryResult> DeliverAsync(DeliveryRequest request, BridgeMode defaultMode, bool fallbackToSpool,
        CancellationToken cancellationToken)
    {
        var toSpool = request.Recipients.Where(r => r.User.ModeIn(defaultMode) == BridgeMode.Spool).ToList();
        var toStore = request.Recipients.Where(r => r.User.ModeIn(defaultMode) == BridgeMode.Legacy).ToList();
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
            // Over LMTP an alias's members share one RCPT and so one reply: when a member's spool failed for now, the
            // RCPT is answered 4xx and sent again, so its other members wait too (else they would get it twice).
            var deferred = spooled.Recipients.Where(o => o.Status.IsTransient).GroupBy(o => o.Recipient.Address, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.First().Status, StringComparer.Ordinal);
            var held = toStore.Where(r => deferred.ContainsKey(r.Address)).ToList();
            outcomes.AddRange(held.Select(r => new RecipientOutcome(r, deferred[r.Address], "not attempted", 0)));
            toStore = [.. toStore.Except(held)];
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
                    Recipients = stored.Recipients.Select(o => o.Status.IsTransient ? Fallen(o, fallback.Recipients.First(f => f.Recipient == o.Recipient)) : o).ToList(),
                };
            }
            outcomes.AddRange(stored.Recipients);
        }

        // A recipient whose RCPT said NOTIFY without FAILURE (NEVER, or SUCCESS alone) gets no failure notice: the sender
        // asked for none, so "notified" holds for it (RFC 3461).
        var wanted = outcomes.Where(o => o.Status.IsPermanent && o.Recipient.Wants("FAILURE")).ToList();
        var notified = !request.PerRecipient && DeliveryResult.NeedsNotification(outcomes) &&
            (wanted.Count == 0 || await notify(request, wanted, DateTimeOffset.Now, cancellationToken).ConfigureAwait(false));
        // Where Bridge is the final delivery agent (the spool, also when a store that refused for now fell back to it),
        // NOTIFY=SUCCESS asks it for a delivery notice; the store is given NOTIFY itself and answers for its own deliveries.
        var successes = outcomes.Where(o => o.Status.IsSuccess && o.Recipient.Wants("SUCCESS") &&
            (o.Relay.StartsWith(SpoolDeliveryAgent.RelayPrefix, StringComparison.Ordinal) || o.Relay.Contains(", fallback " + SpoolDeliveryAgent.RelayPrefix, StringComparison.Ordinal))).ToList();
        if (successes.Count > 0)
        {
            await notify(request, successes, DateTimeOffset.Now, cancellationToken, DsnAction.Delivered).ConfigureAwait(false);
        }
        // An alias that expanded to several users, for a RCPT that asked NOTIFY=SUCCESS: one "expanded" notice for the
        // alias itself (its members were given NOTIFY without SUCCESS), once the message is taken (RFC 3461 6.2.7.3).
        if (!request.PerRecipient && !outcomes.Any(o => o.Status.IsTransient))
        {
            var expanded = outcomes.Where(o => o.Recipient.ExpansionNotice).GroupBy(o => o.Recipient.Address, StringComparer.Ordinal)
                .Where(g => g.Any(o => o.Status.IsSuccess))
                .Select(g => new RecipientOutcome(g.First().Recipient with { Alias = null }, new DeliveryStatus(250, "2.0.0",
                    $"expanded to {g.Count()} recipients"), "alias", 0))
                .ToList();
            if (expanded.Count > 0)
            {
                await notify(request, expanded, DateTimeOffset.Now, cancellationToken, DsnAction.Expanded).ConfigureAwait(false);
            }
        }
        return DeliveryResult.Compose(request.QueueId, outcomes, notified);
    }

    /// <summary>A recipient the store refused for now, after its fallback to the spool: the spool's outcome, unless the
    /// spool refused it for good (over Bridge:Spool:MaxMailboxBytes, say). A fallback never turns the store's "later"
    /// into a bounce: the mail stays with the MTA until the store takes it.</summary>
    private static RecipientOutcome Fallen(RecipientOutcome store, RecipientOutcome spool) => spool.Status.IsPermanent
        ? store with { Relay = $"{store.Relay}, fallback refused ({spool.Status.Code} {spool.Status.Enhanced})" }
        : spool with { Relay = $"{store.Relay}, fallback {spool.Relay}", Attempts = store.Attempts };
}
