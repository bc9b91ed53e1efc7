// Job: decide MAIL and each RCPT: no new transaction while Bridge stops (421 4.3.2), at most
// Bridge:MaxRecipients per message (452 4.5.3), and each recipient through Routing, remembering the result for DATA.
// Failure: a refusal is answered with its precise reply (554 5.7.1 relay, 550 5.1.1 unknown, ...).
using Bridge.Hosting;
using Bridge.Observability;
using SmtpServer;
using SmtpServer.Mail;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace Bridge.Intake;

internal sealed class RecipientFilter(LiveSettings settings, SessionGate gate, BridgeMetrics metrics) : IMailboxFilter
{
    public Task<bool> CanAcceptFromAsync(ISessionContext context, IMailbox from, int size, CancellationToken cancellationToken)
    {
        if (gate.Draining)
        {
            throw new SmtpResponseException(new SmtpResponse(SmtpReplyCode.ServiceUnavailable, "4.3.2 Service shutting down, try again later"), true);
        }
        return Task.FromResult(true);
    }

    public async Task<bool> CanDeliverToAsync(ISessionContext context, IMailbox to, IMailbox from, CancellationToken cancellationToken)
    {
        var session = SessionState.Of(context);
        var max = settings.Current.Options.MaxRecipients;
        if (session.Routes.Count >= max)
        {
            metrics.RecipientRefused("4.5.3");
            throw SmtpReplies.Refusal(new Bridge.Delivery.DeliveryStatus(452, "4.5.3", $"Too many recipients (at most {max} per message)"));
        }
        var routing = settings.Current.Routing;
        // getpwnam may ask a directory server (NSS): never on a socket event thread (Hosting/SocketThreads.cs).
        var route = routing.ResolveWithoutBlocking(to.User ?? "", to.Host ?? "")
            ?? await Task.Run(() => routing.Resolve(to.User ?? "", to.Host ?? ""), CancellationToken.None).ConfigureAwait(false);
        if (!route.IsAccepted)
        {
            metrics.RecipientRefused(route.Refusal.Enhanced);
            throw SmtpReplies.Refusal(route.Refusal);
        }
        session.Routes[to] = route.Recipient!;
        return true;
    }
}
