// Job: at start, before Bridge accepts mail, settle every append a crash (kill -9, power loss) interrupted,
// so no reader ever sees a half record written by Bridge.
// Failure: a mailbox that cannot be settled now is logged; its entry stays and is settled before its next delivery.
using Microsoft.Extensions.Hosting;

namespace Bridge.Delivery.Spool;

internal sealed class SpoolRecoveryService(SpoolDeliveryAgent spool) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => spool.RecoverAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
