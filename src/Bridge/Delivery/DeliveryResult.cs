// Job: what a delivery did for each recipient (status, relay, attempts), and the ONE reply the transaction
// gets, composed by a single rule:
//   all delivered -> 250; any recipient still failing temporarily -> its 4xx (the MTA retries; copies that
//   were delivered may arrive twice: duplicates over loss); only permanent failures and nothing delivered ->
//   the first 5xx as-is; permanent failures next to delivered copies -> 250 once the sender has a delivery
//   status notification for them (DeliveryDispatcher), else 4xx (a 5xx would bounce the delivered recipients,
//   a 250 without the notification would lose the others silently).
// Failure: none; values only.
using Bridge.Common;

namespace Bridge.Delivery;

public sealed record RecipientOutcome(RoutedRecipient Recipient, DeliveryStatus Status, string Relay, int Attempts);

public sealed record DeliveryResult(DeliveryStatus Status, IReadOnlyList<RecipientOutcome> Recipients)
{
    /// <summary>Some copies delivered, the others refused for good, none still pending: the case for a DSN.</summary>
    public static bool NeedsNotification(IReadOnlyList<RecipientOutcome> outcomes) =>
        outcomes.Any(o => o.Status.IsSuccess) && outcomes.Any(o => o.Status.IsPermanent) && !outcomes.Any(o => o.Status.IsTransient);

    public static DeliveryResult Compose(string queueId, IReadOnlyList<RecipientOutcome> outcomes, bool notificationSent = false)
    {
        if (outcomes.All(o => o.Status.IsSuccess))
        {
            return new DeliveryResult(DeliveryStatus.Delivered(queueId), outcomes);
        }
        var transient = outcomes.FirstOrDefault(o => o.Status.IsTransient);
        if (transient is not null)
        {
            return new DeliveryResult(transient.Status, outcomes);
        }
        var permanent = outcomes.First(o => o.Status.IsPermanent);
        if (!outcomes.Any(o => o.Status.IsSuccess))
        {
            return new DeliveryResult(permanent.Status, outcomes);
        }
        if (notificationSent)
        {
            return new DeliveryResult(DeliveryStatus.Delivered(queueId), outcomes);
        }
        return new DeliveryResult(new DeliveryStatus(451, "4.5.0",
            $"<{permanent.Recipient.Address}> failed permanently ({permanent.Status}) while other recipients were " +
            "delivered, and no delivery status notification could be sent; deferring the whole message rather than losing it"), outcomes);
    }
}
