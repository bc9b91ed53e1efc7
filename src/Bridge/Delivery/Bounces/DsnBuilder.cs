// Job: build an RFC 3464 delivery status notification with MimeKit: multipart/report with a human-readable
// part, message/delivery-status (per-message and per-recipient fields) and the original message's headers
// (text/rfc822-headers, so a bounce never carries a large body back).
// Failure: none expected; the caller treats any exception as "no DSN could be built".
using System.Buffers;
using System.Text;
using MimeKit;

namespace Bridge.Delivery.Bounces;

internal static class DsnBuilder
{
    public static MimeMessage Build(string serverName, DeliveryRequest request, IReadOnlyList<RecipientOutcome> failed, DateTimeOffset arrival)
    {
        var dsn = new MimeMessage();
        dsn.From.Add(new MailboxAddress("Mail Delivery System", $"MAILER-DAEMON@{serverName}"));
        dsn.To.Add(MailboxAddress.Parse(request.Sender));
        dsn.Subject = "Undelivered Mail Returned to Sender";
        dsn.Date = DateTimeOffset.Now;
        dsn.MessageId = $"{request.QueueId}.dsn@{serverName}";
        dsn.Headers.Add("Auto-Submitted", "auto-replied");

        var report = new MultipartReport("delivery-status");
        var text = new StringBuilder()
            .Append("This is the mail system at host ").Append(serverName).Append(".\n\n")
            .Append("Your message could not be delivered to one or more recipients. It was delivered to the others.\n\n");
        foreach (var outcome in failed)
        {
            text.Append('<').Append(outcome.Recipient.Address).Append(">: ").Append(outcome.Status.ToString()).Append('\n');
        }
        report.Add(new TextPart("plain") { Text = text.ToString() });

        var status = new MessageDeliveryStatus();
        var perMessage = new HeaderList
        {
            { "Reporting-MTA", $"dns; {serverName}" },
            { "X-Bridge-Queue-ID", request.QueueId },
            { "Arrival-Date", MailDate.Format(arrival) },
        };
        status.StatusGroups.Add(perMessage);
        foreach (var outcome in failed)
        {
            status.StatusGroups.Add(new HeaderList
            {
                { "Final-Recipient", $"rfc822; {outcome.Recipient.Address}" },
                { "Original-Recipient", $"rfc822; {outcome.Recipient.Address}" },
                { "Action", "failed" },
                { "Status", outcome.Status.Enhanced },
                { "Diagnostic-Code", $"smtp; {outcome.Status.Code} {outcome.Status.Enhanced} {outcome.Status.Text}" },
            });
        }
        report.Add(status);
        report.Add(new TextRfc822Headers { Message = MimeMessage.Load(new MemoryStream(HeaderSection(request))) });
        dsn.Body = report;
        return dsn;
    }

    /// <summary>Bridge's Received header and the original header section, ending with the empty line.</summary>
    private static byte[] HeaderSection(DeliveryRequest request)
    {
        var message = request.Message;
        var reader = new SequenceReader<byte>(message);
        var end = reader.TryReadTo(out ReadOnlySequence<byte> headers, "\r\n\r\n"u8) ? headers : message;
        return [.. request.ReceivedHeader.Span, .. end.ToArray(), .. "\r\n\r\n"u8];
    }
}
