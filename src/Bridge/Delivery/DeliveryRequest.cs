// Job: everything a delivery agent needs for one accepted message: envelope (with the client's MAIL FROM
// parameters such as BODY=8BITMIME), resolved recipients, the bytes
// (Bridge's Received header followed by the message exactly as received, CRLF line ends, dot-unstuffed).
// PerRecipient (LMTP): each recipient is delivered and answered on its own (no all-or-none across mailboxes, no DSN
// from Bridge: the client bounces the recipients that failed).
// Failure: none; an immutable value built by Intake.
using System.Buffers;
using Bridge.Common;

namespace Bridge.Delivery;

public sealed record DeliveryRequest(
    string QueueId,
    string Sender,
    IReadOnlyList<RoutedRecipient> Recipients,
    ReadOnlyMemory<byte> ReceivedHeader,
    ReadOnlySequence<byte> Message,
    MessageHeaderSummary Headers,
    IReadOnlyDictionary<string, string> MailParameters,
    bool PerRecipient = false);

/// <summary>What Intake learnt from the header section once, for all agents.</summary>
public sealed record MessageHeaderSummary(int ReceivedCount, IReadOnlyList<string> DeliveredTo);
