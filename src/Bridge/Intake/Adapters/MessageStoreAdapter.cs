// Job: the library's message store (the end of DATA), in front of MessageIntake: translates the library's
// transaction into Bridge's IncomingMessage (the accepted recipients keyed by the library's own objects, as
// MailboxFilterAdapter keyed them) and MessageIntake's verdict into the library's reply; on an LMTP session it leaves
// the replies per recipient for ReplyTextStream, which writes them in place of the library's one reply.
// Corrects: the library's message store returns a single reply for the whole message.
// Failure: none of its own; MessageIntake never throws.
using System.Buffers;
using SmtpServer;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace Bridge.Intake.Adapters;

internal sealed class MessageStoreAdapter(MessageIntake intake) : IMessageStore
{
    public async Task<SmtpResponse> SaveAsync(ISessionContext context, IMessageTransaction transaction,
        ReadOnlySequence<byte> buffer, CancellationToken cancellationToken)
    {
        var wire = SessionWire.Of(context);
        var message = new IncomingMessage(
            transaction.From is { } from ? MailboxFilterAdapter.Envelope(from) : null,
            [.. transaction.To.Select(to => ((object)to, MailboxFilterAdapter.Envelope(to)))],
            transaction.Parameters ?? new Dictionary<string, string>(),
            buffer);
        var verdict = await intake.ReceiveAsync(wire.State, message, cancellationToken).ConfigureAwait(false);
        if (verdict.PerRecipient is { } perRecipient)
        {
            // One reply per recipient the library accepted, in RCPT order: ReplyTextStream writes them for this one.
            wire.RecipientReplies = string.Join("\r\n", perRecipient.Select(SmtpReplies.Line));
        }
        return SmtpReplies.From(verdict.Status);
    }
}
