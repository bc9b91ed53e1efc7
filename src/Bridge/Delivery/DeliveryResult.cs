// Job: what a delivery did for each recipient (status, relay, attempts), and the ONE reply the transaction
// gets, composed by a single rule:
//   all delivered -> 250; any recipient still failing temporarily -> its 4xx (the MTA retries; copies that
//   were delivered may arrive twice: duplicates over loss); only permanent failures and nothing delivered ->
//   the first 5xx as-is; permanent failures next to delivered copies -> 4xx as well (until Bridge sends
//   delivery status notifications, a 5xx would bounce the delivered recipients and a 250 would lose the others).
// Failure: none; values only.
using Bridge.Routing;

namespace Bridge.Delivery;

public sealed record RecipientOutcome(RoutedRecipient Recipient, DeliveryStatus Status, string Relay, int Attempts);

public sealed record DeliveryResult(DeliveryStatus Status, IReadOnlyList<RecipientOutcome> Recipients)
{
    public static DeliveryResult Uniform(string queueId, IEnumerable<RoutedRecipient> recipients, DeliveryStatus status,
        string relay, int attempts)
    {
        var outcomes = recipients.Select(r => new RecipientOutcome(r, status, relay, attempts)).ToList();
        return new DeliveryResult(status.IsSuccess ? DeliveryStatus.Delivered(queueId) : status, outcomes);
    }

    public static DeliveryResult Compose(string queueId, IReadOnlyList<RecipientOutcome> outcomes)
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
        return new DeliveryResult(new DeliveryStatus(451, "4.5.0",
            $"<{permanent.Recipient.Address}> failed permanently ({permanent.Status}) while other recipients were " +
            "delivered; deferring the whole message rather than bouncing or losing any copy"), outcomes);
    }
}
