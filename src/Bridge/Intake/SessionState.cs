// Job: what Bridge remembers about one SMTP or LMTP session: the client's address and HELO name (for Received),
// whether it spoke ESMTP or is an LMTP session (accepted on an LMTP socket), the routing result of each accepted RCPT of the current transaction, and the replies the
// input and output adapters pass to RecipientFilter and back (PendingRefusal, MailboxUnavailableReply).
// Failure: none; kept in SmtpServer's per-session property bag.
using System.Net;
using Bridge.Common;
using Bridge.Routing;
using SmtpServer;
using SmtpServer.Mail;
using SmtpServer.Net;
using SmtpServer.Protocol;

namespace Bridge.Intake;

internal sealed class SessionState
{
    private const string Key = "Bridge:Session";

    public string? HeloName { get; private set; }

    public bool Esmtp { get; private set; }

    public IPEndPoint? Client { get; init; }

    /// <summary>SIZE= of the current transaction's MAIL FROM (0: none), for the quota check at RCPT.</summary>
    public long AnnouncedSize { get; set; }

    /// <summary>Accepted on an LMTP socket (RFC 2033): LHLO, and one reply per recipient after the message.</summary>
    public bool Lmtp { get; set; }

    /// <summary>LMTP: the replies for the message just delivered, one per accepted recipient in RCPT order; written by
    /// ReplyTextStream in place of the single reply SmtpServer writes for DATA.</summary>
    public string? RecipientReplies { get; set; }

    /// <summary>Replaces the next "250" reply: set by the input side when it handed SmtpServer a NOOP in place of a
    /// command it must refuse itself (HELO/EHLO on an LMTP session).</summary>
    public string? NextReplyOverride { get; set; }

    /// <summary>Accepted recipients of the current transaction, by the IMailbox instance SmtpServer keeps: the local
    /// recipients each RCPT reached (one user, or an alias's members).</summary>
    public Dictionary<IMailbox, IReadOnlyList<RoutedRecipient>> Routes { get; } = new(ReferenceEqualityComparer.Instance);

    /// <summary>The current transaction's MAIL asked SMTPUTF8 (set by the input side as it screens MAIL lines).</summary>
    public bool Smtputf8 { get; set; }

    /// <summary>Set by CommandScreen for the MAIL/RCPT line being handed to SmtpServer: RecipientFilter answers it.</summary>
    public Bridge.Common.DeliveryStatus? PendingRefusal { get; set; }

    /// <summary>Set by CommandScreen for an RCPT line with DSN parameters (NOTIFY, ORCPT), which SmtpServer drops:
    /// RecipientFilter gives them to the recipients routed for it.</summary>
    public IReadOnlyDictionary<string, string>? PendingRcptParameters { get; set; }

    /// <summary>Set by RecipientFilter when it declines a recipient without it counting as a client error: the next
    /// "550 mailbox unavailable" SmtpServer writes is replaced by this reply (ReplyTextStream).</summary>
    public string? MailboxUnavailableReply { get; set; }

    private IDisposable? _deliveryInFlight;

    /// <summary>The message being delivered, counted by SessionGate until its reply has been written (a graceful stop
    /// waits for that, so the reply is never cut off by the stop).</summary>
    public void DeliveryStarted(IDisposable inFlight) => Interlocked.Exchange(ref _deliveryInFlight, inFlight)?.Dispose();

    /// <summary>The reply is out (or the session is gone).</summary>
    public void DeliveryAnswered() => Interlocked.Exchange(ref _deliveryInFlight, null)?.Dispose();

    public static SessionState Attach(ISessionContext context)
    {
        var state = new SessionState
        {
            Client = context.Properties.TryGetValue(EndpointListener.RemoteEndPointKey, out var remote) ? remote as IPEndPoint : null,
        };
        context.Properties[Key] = state;
        context.CommandExecuting += (_, args) => state.Observe(args.Command);
        return state;
    }

    public static SessionState Of(ISessionContext context) =>
        context.Properties.TryGetValue(Key, out var value) && value is SessionState state ? state : Attach(context);

    private void Observe(SmtpCommand command)
    {
        switch (command)
        {
            case EhloCommand ehlo: // LHLO on an LMTP session reaches SmtpServer as EHLO (LmtpDialect)
                (HeloName, Esmtp) = (ehlo.DomainOrAddress, true);
                Routes.Clear();
                break;
            case HeloCommand helo:
                (HeloName, Esmtp) = (helo.DomainOrAddress, false);
                Routes.Clear();
                break;
            case MailCommand or RsetCommand:
                Routes.Clear();
                break;
        }
    }
}
