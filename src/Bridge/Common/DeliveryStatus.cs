// Job: the one value every delivery outcome is expressed in: SMTP reply code + enhanced status code + text.
// It travels from the delivery agents back to Intake, which is the only place that writes it as a reply.
// Failure: none; a status is data, never an exception.
namespace Bridge.Common;

public readonly record struct DeliveryStatus(int Code, string Enhanced, string Text)
{
    public bool IsSuccess => Code is >= 200 and < 300;

    /// <summary>4xx, and anything that is neither success nor permanent failure (a code no reply may end with):
    /// the safe reading, the MTA keeps the message.</summary>
    public bool IsTransient => !IsSuccess && !IsPermanent;

    public bool IsPermanent => Code is >= 500 and < 600;

    public override string ToString() => $"{Code} {Enhanced} {Text}";

    public static DeliveryStatus Delivered(string queueId) => new(250, "2.0.0", $"Ok: queued as {queueId}");

    public static DeliveryStatus LockBusy(string mailbox) =>
        new(451, "4.2.0", $"Mailbox {mailbox} is locked by another process, try again later");

    public static DeliveryStatus MailboxUnusable(string mailbox, string reason) =>
        new(450, "4.2.0", $"Mailbox {mailbox} is unusable: {reason}");

    public static DeliveryStatus MailboxFull(string mailbox) =>
        new(552, "5.2.2", $"Mailbox {mailbox} is full");

    /// <summary>Bridge:Spool:QuotaExceeded = Defer: the mail waits in the MTA's queue until the user makes room.</summary>
    public static DeliveryStatus MailboxFullForNow(string mailbox) =>
        new(452, "4.2.2", $"Mailbox {mailbox} is full, try again later");

    public static DeliveryStatus NoSpace() => new(452, "4.3.1", "Insufficient system storage");

    public static DeliveryStatus LocalError(string what) => new(451, "4.3.0", $"Local error: {what}");

    public static DeliveryStatus Loop(string recipient) =>
        new(554, "5.4.6", $"Mail forwarding loop for {recipient}");

    public static DeliveryStatus Deferred(string why) => new(451, "4.3.0", why);
}
