// Job: one session as the adapters see it, kept in the library's per-session property bag: Bridge's SessionState
// (fed from the commands the library executes: HELO/EHLO/LHLO, MAIL, RSET) and what the adapters pass each other
// between a line read, the library's callback for it, and the reply written for it:
// - from the input side (CommandScreen) to the filter adapter: the screen's verdict on the MAIL/RCPT line in hand (its
//   refusal, its DSN parameters), and for the screen itself whether the transaction's MAIL asked SMTPUTF8;
// - to the output side (ReplyTextStream): the reply that replaces the next "250" (a refused HELO/EHLO on LMTP), the
//   next "550 mailbox unavailable" (a recipient declined without an error), and the message's reply (LMTP: one per
//   recipient).
// Corrects: the library hands its callbacks only its own objects, and its replies are fixed texts.
// Failure: none.
using System.Net;
using SmtpServer;
using SmtpServer.Net;
using SmtpServer.Protocol;

namespace Bridge.Intake.Adapters;

internal sealed class SessionWire
{
    private const string Key = "Bridge:Session";

    public required SessionState State { get; init; }

    /// <summary>The current transaction's MAIL asked SMTPUTF8 (set by the input side as it screens MAIL lines).</summary>
    public bool Smtputf8 { get; set; }

    /// <summary>CommandScreen's verdict on the line being handed to the library: for a MAIL/RCPT line, the refusal to
    /// answer in place of the library's reply and an RCPT's DSN parameters (NOTIFY, ORCPT), which the library drops.
    /// The filter adapter takes it (TakeScreenedLine).</summary>
    public CommandScreen.Verdict ScreenedLine { get; set; }

    /// <summary>The screen's verdict on the MAIL/RCPT line in hand, answered now: it is not seen again.</summary>
    public CommandScreen.Verdict TakeScreenedLine()
    {
        var line = ScreenedLine;
        ScreenedLine = default;
        return line;
    }

    /// <summary>Replaces the next "250" reply: set by the input side when it handed the library a NOOP in place of a
    /// command it must refuse itself (HELO/EHLO on an LMTP session).</summary>
    public string? NextReplyOverride { get; set; }

    /// <summary>Set when a recipient was declined without it counting as a client error: the next
    /// "550 mailbox unavailable" the library writes is replaced by this reply (ReplyTextStream).</summary>
    public string? MailboxUnavailableReply { get; set; }

    /// <summary>LMTP: the replies for the message just delivered, one per accepted recipient in RCPT order; written by
    /// ReplyTextStream in place of the single reply the library writes for DATA.</summary>
    public string? RecipientReplies { get; set; }

    public static SessionWire Attach(ISessionContext context)
    {
        var wire = new SessionWire
        {
            State = new SessionState
            {
                Client = context.Properties.TryGetValue(EndpointListener.RemoteEndPointKey, out var remote) ? remote as IPEndPoint : null,
            },
        };
        context.Properties[Key] = wire;
        context.CommandExecuting += (_, args) => wire.Observe(args.Command);
        return wire;
    }

    public static SessionWire Of(ISessionContext context) =>
        context.Properties.TryGetValue(Key, out var value) && value is SessionWire wire ? wire : Attach(context);

    private void Observe(SmtpCommand command)
    {
        switch (command)
        {
            case EhloCommand ehlo: // LHLO on an LMTP session reaches the library as EHLO (LmtpDialect)
                State.Greeted(ehlo.DomainOrAddress, esmtp: true);
                break;
            case HeloCommand helo:
                State.Greeted(helo.DomainOrAddress, esmtp: false);
                break;
            case MailCommand or RsetCommand:
                State.TransactionReset();
                break;
        }
    }
}
