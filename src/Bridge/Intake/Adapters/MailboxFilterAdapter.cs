// Job: the library's mailbox filter (MAIL and each RCPT), in front of RecipientFilter: translates the library's
// mailboxes into Bridge's envelope types, hands over what the input side found for the line (refusal, DSN
// parameters), and turns RecipientFilter's verdict into what the library understands.
// Corrects: the library takes a refusal only as an exception (which counts towards Bridge:MaxErrorsPerSession and gets
// ", N retry(ies) remaining." appended; ReplyTextStream removes it again), and a declined recipient always gets its
// fixed "550 mailbox unavailable" (replaced on the way out by the reply RecipientFilter chose).
// Failure: a refusal is thrown as SmtpResponseException, as the library expects; nothing else is thrown.
using SmtpServer;
using SmtpServer.Mail;
using SmtpServer.Storage;

namespace Bridge.Intake.Adapters;

internal sealed class MailboxFilterAdapter(RecipientFilter filter) : IMailboxFilter
{
    public Task<bool> CanAcceptFromAsync(ISessionContext context, IMailbox from, int size, CancellationToken cancellationToken)
    {
        var wire = SessionWire.Of(context);
        var verdict = filter.CheckSender(wire.State, new SenderRequest(Envelope(from), size, wire.TakeScreenedLine().Refusal));
        return Task.FromResult(Answer(wire, verdict));
    }

    public async Task<bool> CanDeliverToAsync(ISessionContext context, IMailbox to, IMailbox from, CancellationToken cancellationToken)
    {
        var wire = SessionWire.Of(context);
        var line = wire.TakeScreenedLine();
        var request = new RecipientRequest(to, Envelope(to), line.Refusal, line.RcptParameters);
        return Answer(wire, await filter.CheckRecipientAsync(wire.State, request).ConfigureAwait(false));
    }

    internal static EnvelopeMailbox Envelope(IMailbox mailbox) => new(mailbox.User ?? "", mailbox.Host ?? "");

    private static bool Answer(SessionWire wire, CommandVerdict verdict)
    {
        switch (verdict.Outcome)
        {
            case CommandOutcome.Accepted:
                return true;
            case CommandOutcome.Declined:
                wire.MailboxUnavailableReply = SmtpReplies.Line(verdict.Reply!.Value);
                return false;
            case CommandOutcome.RefusedAndClosed:
                throw new SmtpServer.Protocol.SmtpResponseException(SmtpReplies.From(verdict.Reply!.Value), true);
            default:
                throw SmtpReplies.Refusal(verdict.Reply!.Value);
        }
    }
}
