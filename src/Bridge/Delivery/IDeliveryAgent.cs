// Job: the contract of one delivery target (Spool, Store). An agent delivers every recipient it is given or none.
// Failure: an agent never throws for a delivery problem; it returns a DeliveryStatus. Cancellation
// (shutdown) is reported as a transient status too.
using Bridge.Common;

namespace Bridge.Delivery;

public interface IDeliveryAgent
{
    Task<DeliveryResult> DeliverAsync(DeliveryRequest request, CancellationToken cancellationToken);
}
