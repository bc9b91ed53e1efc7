// Job: build an RFC 3464 delivery status notification with MimeKit: multipart/report with a human-readable
// part, message/delivery-status (per-message and per-recipient fields, with the client's ENVID and ORCPT of RFC 3461)
// and the original message: its headers (text/rfc822-headers: the default, and RET=HDRS), or all of it
// (message/rfc822) when the sender asked RET=FULL. For failures ("failed"), or, when the sender asked NOTIFY=SUCCESS,
// for deliveries where Bridge is the final delivery agent ("delivered") and aliases it expanded ("expanded").
// Failure: none expected; the caller treats any exception as "no DSN could be built".
using System.Buffers;
using System.Text;
using Bridge.Common;
using MimeKit;

namespace Bridge.Delivery.Bounces;

/// <summary>What a notice reports (RFC 3464's Action): a failure, a delivery where Bridge is the final agent, or an
/// alias Bridge expanded to several users (RFC 3461 6.2.7.3).</summary>
public enum DsnAction
{
    Failed,
    Delivered,
    Expanded,
}

internal static class DsnBuilder
{
    public static MimeMessage Build(string serverName, DeliveryRequest request, IReadOnlyList<RecipientOutcome> failed, DateTimeOffset arrival,
        DsnAction action = DsnAction.Failed)
    {
        var delivered = action != DsnAction.Failed;
        var dsn = new MimeMessage();
        dsn.From.Add(new MailboxAddress("Mail Delivery System", $"MAILER-DAEMON@{serverName}"));
        dsn.To.Add(MailboxAddress.Parse(request.Sender));
        dsn.Subject = delivered ? "Successful Mail Delivery Report" : "Undelivered Mail Returned to Sender";
        dsn.Date = DateTimeOffset.Now;
        dsn.MessageId = $"{request.QueueId}.dsn@{serverName}";
        dsn.Headers.Add("Auto-Submitted", "auto-replied");

        var report = new MultipartReport("delivery-status");
        var text = new StringBuilder()
            .Append("This is the mail system at host ").Append(serverName).Append(".\n\n")
            .Append(action switch
            {
                DsnAction.Delivered => "Your message was delivered to the mailboxes of the recipients below, as you asked (NOTIFY=SUCCESS).\n\n",
                DsnAction.Expanded => "Your message was delivered to the addresses below, which are lists: each was expanded to its members, " +
                    "who get no notices of their own (NOTIFY=SUCCESS, RFC 3461).\n\n",
                _ => "Your message could not be delivered to one or more recipients. It was delivered to the others.\n\n",
            });
        foreach (var outcome in failed)
        {
            text.Append('<').Append(outcome.Recipient.Address).Append(">: ").Append(outcome.Status.ToString()).Append('\n');
        }
        report.Add(new TextPart("plain") { Text = text.ToString() });

        var status = new MessageDeliveryStatus();
        var perMessage = new HeaderList();
        if (request.MailParameters.TryGetValue("ENVID", out var envid))
        {
            perMessage.Add("Original-Envelope-Id", Xtext.Decode(envid));
        }
        perMessage.Add("Reporting-MTA", $"dns; {serverName}");
        perMessage.Add("X-Bridge-Queue-ID", request.QueueId);
        perMessage.Add("Arrival-Date", MailDate.Format(arrival));
        status.StatusGroups.Add(perMessage);
        foreach (var outcome in failed)
        {
            var recipient = outcome.Recipient;
            var group = new HeaderList();
            if (recipient.Orcpt is { } orcpt)
            {
                var semicolon = orcpt.IndexOf(';', StringComparison.Ordinal);
                group.Add("Original-Recipient", $"{orcpt[..semicolon]}; {Xtext.Decode(orcpt[(semicolon + 1)..])}");
            }
            else
            {
                group.Add("Original-Recipient", $"rfc822; {recipient.Address}");
            }
            group.Add("Final-Recipient", $"rfc822; {recipient.StoreAddress}");
            group.Add("Action", action switch { DsnAction.Delivered => "delivered", DsnAction.Expanded => "expanded", _ => "failed" });
            group.Add("Status", outcome.Status.Enhanced);
            group.Add("Diagnostic-Code", $"smtp; {outcome.Status.Code} {outcome.Status.Enhanced} {outcome.Status.Text}");
            status.StatusGroups.Add(group);
        }
        report.Add(status);
        var full = request.MailParameters.TryGetValue("RET", out var ret) && ret.Equals("FULL", StringComparison.OrdinalIgnoreCase);
        report.Add(full
            ? new MessagePart("rfc822") { Message = MimeMessage.Load(new MemoryStream(WholeMessage(request))) }
            : new TextRfc822Headers { Message = MimeMessage.Load(new MemoryStream(HeaderSection(request))) });
        dsn.Body = report;
        return dsn;
    }

    /// <summary>Bridge's Received header and the whole original message (RET=FULL).</summary>
    private static byte[] WholeMessage(DeliveryRequest request) => [.. request.ReceivedHeader.Span, .. request.Message.ToArray(), .. "\r\n"u8];

    /// <summary>Bridge's Received header and the original header section, ending with the empty line.</summary>
    private static byte[] HeaderSection(DeliveryRequest request)
    {
        var message = request.Message;
        var reader = new SequenceReader<byte>(message);
        var end = reader.TryReadTo(out ReadOnlySequence<byte> headers, "\r\n\r\n"u8) ? headers : message;
        return [.. request.ReceivedHeader.Span, .. end.ToArray(), .. "\r\n\r\n"u8];
    }
}
