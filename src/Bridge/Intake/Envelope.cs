// Job: the envelope and the verdicts as Bridge's session logic speaks them, in Bridge's own types: the adapters
// (Intake/Adapters) translate the library's mailboxes, transactions and replies into these and back, so that
// RecipientFilter and MessageIntake never see the SMTP library.
// Failure: none; plain values.
using System.Buffers;
using Bridge.Common;

namespace Bridge.Intake;

/// <summary>An envelope address as the client gave it: local part (unquoted) and domain, "" for either when absent.</summary>
internal readonly record struct EnvelopeMailbox(string User, string Host)
{
    /// <summary>"user@host" as read, "" when both parts are blank (the null sender), for reply texts.</summary>
    public string AsText() => string.IsNullOrWhiteSpace(User) && string.IsNullOrWhiteSpace(Host) ? "" : $"{User}@{Host}";
}

/// <summary>A MAIL command: its address, its SIZE= (0: none), and the refusal the command screen found for its line.</summary>
internal sealed record SenderRequest(EnvelopeMailbox Address, long AnnouncedSize, DeliveryStatus? LineRefusal);

/// <summary>An RCPT command. <paramref name="Key"/> stands for this accepted recipient until its message arrives
/// (compared by reference: the adapter passes the library's own object for it).</summary>
internal sealed record RecipientRequest(object Key, EnvelopeMailbox Address, DeliveryStatus? LineRefusal,
    IReadOnlyDictionary<string, string>? Dsn);

/// <summary>A message at the end of DATA: its sender (null: none known), the accepted recipients in RCPT order (each
/// with the key its RecipientRequest had), MAIL's parameters, and the content without the final CRLF.</summary>
internal sealed record IncomingMessage(EnvelopeMailbox? Sender, IReadOnlyList<(object Key, EnvelopeMailbox Address)> Recipients,
    IReadOnlyDictionary<string, string> Parameters, ReadOnlySequence<byte> Content);

/// <summary>What becomes of a MAIL or RCPT: accepted; refused (a client error, counted towards
/// Bridge:MaxErrorsPerSession); refused and the session closed; or declined without counting as a client error.</summary>
internal enum CommandOutcome
{
    Accepted,
    Refused,
    RefusedAndClosed,
    Declined,
}

internal readonly record struct CommandVerdict(CommandOutcome Outcome, DeliveryStatus? Reply = null)
{
    public static CommandVerdict Accept => new(CommandOutcome.Accepted);

    public static CommandVerdict Refuse(DeliveryStatus reply) => new(CommandOutcome.Refused, reply);

    public static CommandVerdict RefuseAndClose(DeliveryStatus reply) => new(CommandOutcome.RefusedAndClosed, reply);

    public static CommandVerdict Decline(DeliveryStatus reply) => new(CommandOutcome.Declined, reply);
}

/// <summary>The reply to a message and, on an LMTP session, one status per accepted recipient in RCPT order.</summary>
internal sealed record MessageVerdict(DeliveryStatus Status, IReadOnlyList<DeliveryStatus>? PerRecipient);
