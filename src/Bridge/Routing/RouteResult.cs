// Job: the outcome of routing one RCPT address: a local recipient, or the precise refusal to reply with.
// Failure: a refusal is a value (DeliveryStatus), never an exception.
using Bridge.Common;

namespace Bridge.Routing;

public sealed record RouteResult(RoutedRecipient? Recipient, DeliveryStatus Refusal)
{
    public bool IsAccepted => Recipient is not null;

    public static RouteResult Accept(RoutedRecipient recipient) => new(recipient, default);

    public static RouteResult Refuse(DeliveryStatus status) => new(null, status);
}
