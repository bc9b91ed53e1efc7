// Job: decide each RCPT through Routing and remember the resolved recipient for DATA.
// Failure: a refused recipient is answered with Routing's precise reply (554 5.7.1 relay, 550 5.1.1 unknown).
using Bridge.Hosting;
using SmtpServer;
using SmtpServer.Mail;
using SmtpServer.Storage;

namespace Bridge.Intake;

internal sealed class RecipientFilter(LiveSettings settings) : IMailboxFilter
{
    public Task<bool> CanAcceptFromAsync(ISessionContext context, IMailbox from, int size, CancellationToken cancellationToken) =>
        Task.FromResult(true);

    public Task<bool> CanDeliverToAsync(ISessionContext context, IMailbox to, IMailbox from, CancellationToken cancellationToken)
    {
        var route = settings.Current.Routing.Resolve(to.User ?? "", to.Host ?? "");
        if (!route.IsAccepted)
        {
            throw SmtpReplies.Refusal(route.Refusal);
        }
        SessionState.Of(context).Routes[to] = route.Recipient!;
        return Task.FromResult(true);
    }
}
