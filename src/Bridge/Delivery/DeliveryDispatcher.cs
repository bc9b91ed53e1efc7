// Job: pick the delivery agent for a message from the mode in force (Bridge:Mode, or a user's own Mode).
// Failure: returns the agent's status; a mode with no agent available answers 451 4.3.0 (mail stays queued).
using Bridge.Delivery.Spool;
using Bridge.Routing;

namespace Bridge.Delivery;

public sealed class DeliveryDispatcher(SpoolDeliveryAgent spool)
{
    public async Task<(DeliveryStatus Status, BridgeMode Mode)> DeliverAsync(
        DeliveryRequest request, BridgeMode defaultMode, CancellationToken cancellationToken)
    {
        var modes = request.Recipients.Select(r => r.User.ModeOverride ?? defaultMode).Distinct().ToList();
        if (modes.Count != 1 || modes[0] != BridgeMode.Spool)
        {
            return (DeliveryStatus.Deferred("Legacy mode is not available in this version of Bridge"), modes[0]);
        }
        return (await spool.DeliverAsync(request, cancellationToken).ConfigureAwait(false), BridgeMode.Spool);
    }
}
