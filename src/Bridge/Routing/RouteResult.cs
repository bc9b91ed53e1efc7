// Job: the outcome of routing one RCPT address: the local recipients it reaches (one user, or the members of an
// alias), or the precise refusal to reply with.
// Failure: a refusal is a value (DeliveryStatus), never an exception.
using Bridge.Common;

namespace Bridge.Routing;

public sealed record RouteResult(IReadOnlyList<RoutedRecipient> Recipients, DeliveryStatus Refusal)
{
    public bool IsAccepted => Recipients.Count > 0;

    /// <summary>The first (for a user's own address, the only) recipient.</summary>
    public RoutedRecipient? Recipient => Recipients.Count > 0 ? Recipients[0] : null;

    public static RouteResult Accept(RoutedRecipient recipient) => new([recipient], default);

    public static RouteResult Accept(IReadOnlyList<RoutedRecipient> recipients) => new(recipients, default);

    public static RouteResult Refuse(DeliveryStatus status) => new([], status);
}
