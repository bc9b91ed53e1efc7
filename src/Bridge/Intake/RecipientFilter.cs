// Job: decide MAIL and each RCPT: no new transaction while Bridge stops (421 4.3.2), the parameter refusal
// CommandScreen found (501/552/555 5.5.4), addresses that cannot be written back in RFC 5321 syntax (553), at most
// Bridge:MaxRecipients per message (452 4.5.3, not counted as a client error), each recipient through Routing,
// remembering the result for DATA, and for spool delivery its mailbox's quota with the announced SIZE (MailboxQuota:
// 552 5.2.2, or 452 4.2.2 with Bridge:Spool:QuotaExceeded = Defer).
// Failure: a refusal is answered with its precise reply (554 5.7.1 relay, 550 5.1.1 unknown, ...).
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery;
using Bridge.Delivery.Spool;
using Bridge.Observability;
using Bridge.Routing;
using SmtpServer;
using SmtpServer.Mail;
using SmtpServer.Protocol;
using SmtpServer.Storage;

using Bridge.Intake.Adapters;

namespace Bridge.Intake;

internal sealed class RecipientFilter(LiveSettings settings, SessionGate gate, BridgeMetrics metrics) : IMailboxFilter
{
    public Task<bool> CanAcceptFromAsync(ISessionContext context, IMailbox from, int size, CancellationToken cancellationToken)
    {
        if (gate.Draining)
        {
            throw new SmtpResponseException(new SmtpResponse(SmtpReplyCode.ServiceUnavailable, "4.3.2 Service shutting down, try again later"), true);
        }
        var session = SessionState.Of(context);
        RefuseWhatTheLineCannotCarry(session, from, "5.1.7", "sender");
        session.AnnouncedSize = size;
        return Task.FromResult(true);
    }

    public async Task<bool> CanDeliverToAsync(ISessionContext context, IMailbox to, IMailbox from, CancellationToken cancellationToken)
    {
        var session = SessionState.Of(context);
        var dsn = session.PendingRcptParameters; // this RCPT line's NOTIFY/ORCPT (SmtpServer drops them)
        session.PendingRcptParameters = null;
        RefuseWhatTheLineCannotCarry(session, to, "5.1.3", "recipient");
        var max = settings.Current.Options.MaxRecipients;
        if (session.Routes.Count >= max)
        {
            // Not a client error (RFC 5321 4.5.3.1.10: the client sends the rest in another transaction), so it must not
            // count towards MaxErrorsPerSession: declined without an exception, with this reply in place of SmtpServer's.
            metrics.RecipientRefused("4.5.3");
            session.MailboxUnavailableReply = $"452 4.5.3 Too many recipients (at most {max} per message)";
            return false;
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
        // Refused for its quota when every mailbox it reaches is full (an alias with room in one mailbox is accepted:
        // the others are answered after DATA).
        var snapshot = settings.Current;
        var full = route.Recipients
            .Select(r => r.User.ModeIn(snapshot.Options.Mode) == BridgeMode.Spool
                ? MailboxQuota.RefusalAtRcpt(snapshot.Spool, r.User.ShortName, session.AnnouncedSize)
                : null)
            .ToList();
        if (full.All(f => f is not null))
        {
            metrics.RecipientRefused(full[0]!.Value.Enhanced);
            throw SmtpReplies.Refusal(full[0]!.Value);
        }
        session.Routes[to] = dsn is null ? route.Recipients : WithDsn(route.Recipients, dsn);
        return true;
    }

    /// <summary>The RCPT's NOTIFY and ORCPT given to the recipients it reached. An alias of several users reports itself
    /// "expanded" for NOTIFY=SUCCESS and passes its members NOTIFY without SUCCESS (RFC 3461 6.2.7.3, as Postfix's
    /// local(8) does): one notice for the alias, not one per member.</summary>
    private static List<RoutedRecipient> WithDsn(IReadOnlyList<RoutedRecipient> recipients, IReadOnlyDictionary<string, string> dsn)
    {
        var notify = dsn.GetValueOrDefault("NOTIFY");
        var orcpt = dsn.GetValueOrDefault("ORCPT");
        var expands = recipients.Count > 1 && notify is not null && notify.Split(',').Contains("SUCCESS", StringComparer.Ordinal);
        if (expands)
        {
            var rest = notify!.Split(',').Where(w => w != "SUCCESS").ToList();
            notify = rest.Count > 0 ? string.Join(',', rest) : "NEVER";
        }
        return [.. recipients.Select(r => r with { Notify = notify, Orcpt = orcpt, ExpansionNotice = expands })];
    }

    /// <summary>The parameter refusal CommandScreen left for this MAIL/RCPT line, or an address that cannot be written
    /// back in RFC 5321 syntax (553): thrown as the reply.</summary>
    private static void RefuseWhatTheLineCannotCarry(SessionState session, IMailbox address, string enhanced, string role)
    {
        if (session.PendingRefusal is { } refusal)
        {
            session.PendingRefusal = null;
            throw SmtpReplies.Refusal(refusal);
        }
        if (!EnvelopeAddress.TryFormat(address.User ?? "", address.Host ?? "", out _))
        {
            throw SmtpReplies.Refusal(new DeliveryStatus(553, enhanced, $"Bad {role} address syntax: a control character in the local part"));
        }
    }
}
