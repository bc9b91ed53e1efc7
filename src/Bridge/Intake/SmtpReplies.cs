// Job: turn a DeliveryStatus into SmtpServer's reply object: "<code> <enhanced> <text>".
// Failure: none.
using Bridge.Delivery;
using SmtpServer.Protocol;

namespace Bridge.Intake;

internal static class SmtpReplies
{
    public static SmtpResponse From(DeliveryStatus status) =>
        new((SmtpReplyCode)status.Code, $"{status.Enhanced} {status.Text}");

    /// <summary>For the MAIL/RCPT stage, where SmtpServer only takes a refusal as an exception
    /// (the " N retry(ies) remaining" text it appends is removed again by ReplyTextStream).</summary>
    public static SmtpResponseException Refusal(DeliveryStatus status) => new(From(status));
}
