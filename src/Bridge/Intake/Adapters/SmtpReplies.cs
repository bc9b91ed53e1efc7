// Job: turn a DeliveryStatus into SmtpServer's reply object: "<code> <enhanced> <text>", always a final code and
// printable ASCII text. Corrects: the library's SmtpResponse has no enhanced status code and writes the code and
// text it is given as they are.
// Failure: none.
using Bridge.Common;
using Bridge.Delivery;
using SmtpServer.Protocol;

namespace Bridge.Intake.Adapters;

internal static class SmtpReplies
{
    /// <summary>Every reply Bridge gives: a 2xx/4xx/5xx code (anything else becomes 451 4.3.0), an enhanced code,
    /// and clean printable ASCII text (whatever a store or a file said).</summary>
    public static SmtpResponse From(DeliveryStatus status)
    {
        status = Final(status);
        return new((SmtpReplyCode)status.Code, $"{status.Enhanced} {Bridge.Delivery.Smtp.SmtpReply.CleanText(status.Text)}");
    }

    /// <summary>The same reply as one line of text, as written on the wire (LMTP's per-recipient replies).</summary>
    public static string Line(DeliveryStatus status)
    {
        status = Final(status);
        return $"{status.Code} {status.Enhanced} {Bridge.Delivery.Smtp.SmtpReply.CleanText(status.Text)}";
    }

    private static DeliveryStatus Final(DeliveryStatus status) => Bridge.Delivery.Smtp.SmtpReply.IsFinal(status)
        ? status
        : Replies.NotFinal(status);

    /// <summary>For the MAIL/RCPT stage, where SmtpServer only takes a refusal as an exception
    /// (the " N retry(ies) remaining" text it appends is removed again by ReplyTextStream).</summary>
    public static SmtpResponseException Refusal(DeliveryStatus status) => new(From(status));
}
