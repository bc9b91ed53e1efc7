// Job: decide MAIL and each RCPT: no new transaction while Bridge stops (421 4.3.2), the parameter refusal
// CommandScreen found (501/552/555 5.5.4), addresses that cannot be written back in RFC 5321 syntax (553), at most
// Bridge:MaxRecipients per message (452 4.5.3, not counted as a client error), each recipient through Routing,
// remembering the result for DATA, and for spool delivery its mailbox's quota with the announced SIZE (MailboxQuota:
// 552 5.2.2, or 452 4.2.2 with Bridge:Spool:QuotaExceeded = Defer).
// It speaks Bridge's types only (Envelope.cs); Adapters/MailboxFilterAdapter turns its verdicts into the library's.
// Failure: a refusal is a verdict with its precise reply (554 5.7.1 relay, 550 5.1.1 unknown, ...); nothing is thrown.
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery.Spool;
using Bridge.Observability;
using Bridge.Routing;

namespace Bridge.Intake;

internal sealed class RecipientFilter(LiveSettings settings, SessionGate gate, BridgeMetrics metrics)
{
    public CommandVerdict CheckSender(SessionState session, SenderRequest mail)
    {
        if (gate.Draining)
        {
            return CommandVerdict.RefuseAndClose(Replies.ShuttingDown);
        }
        if (WhatTheLineCannotCarry(mail.LineRefusal, mail.Address, "5.1.7", "sender") is { } refusal)
        {
            return CommandVerdict.Refuse(refusal);
        }
        session.AnnouncedSize = mail.AnnouncedSize;
        return CommandVerdict.Accept;
    }

    public async Task<CommandVerdict> CheckRecipientAsync(SessionState session, RecipientRequest rcpt)
    {
        var dsn = rcpt.Dsn; // this RCPT line's NOTIFY/ORCPT (the library drops them)
        if (WhatTheLineCannotCarry(rcpt.LineRefusal, rcpt.Address, "5.1.3", "recipient") is { } refusal)
        {
            return CommandVerdict.Refuse(refusal);
        }
        var max = settings.Current.Options.MaxRecipients;
        if (session.Routes.Count >= max)
        {
            // Not a client error (RFC 5321 4.5.3.1.10: the client sends the rest in another transaction), so it must not
            // count towards MaxErrorsPerSession.
            metrics.RecipientRefused("4.5.3");
            return CommandVerdict.Decline(Replies.TooManyRecipients(max));
        }
        var routing = settings.Current.Routing;
        var (user, host) = (rcpt.Address.User, rcpt.Address.Host);
        // getpwnam may ask a directory server (NSS): never on a socket event thread (Hosting/SocketThreads.cs).
        var route = routing.ResolveWithoutBlocking(user, host)
            ?? await Task.Run(() => routing.Resolve(user, host), CancellationToken.None).ConfigureAwait(false);
        if (!route.IsAccepted)
        {
            metrics.RecipientRefused(route.Refusal.Enhanced);
            return CommandVerdict.Refuse(route.Refusal);
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
            return CommandVerdict.Refuse(full[0]!.Value);
        }
        session.Routes[rcpt.Key] = dsn is null ? route.Recipients : WithDsn(route.Recipients, dsn);
        return CommandVerdict.Accept;
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

    /// <summary>The parameter refusal CommandScreen found for this MAIL/RCPT line, or an address that cannot be written
    /// back in RFC 5321 syntax (553); null when neither.</summary>
    private static DeliveryStatus? WhatTheLineCannotCarry(DeliveryStatus? lineRefusal, EnvelopeMailbox address, string enhanced, string role) =>
        lineRefusal ?? (EnvelopeAddress.TryFormat(address.User, address.Host, out _) ? null : Replies.UnwritableAddress(enhanced, role));
}
