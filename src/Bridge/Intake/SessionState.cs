// Job: what Bridge remembers about one SMTP or LMTP session: the client's address and HELO name (for Received),
// whether it spoke ESMTP or is an LMTP session (accepted on an LMTP socket), the SIZE its MAIL announced, the routing
// result of each accepted RCPT of the current transaction, and the message being delivered (for a graceful stop).
// What the adapters pass each other about the library's lines and replies is theirs (Adapters/SessionWire).
// Failure: none.
using System.Net;
using Bridge.Common;

namespace Bridge.Intake;

internal sealed class SessionState
{
    public string? HeloName { get; private set; }

    public bool Esmtp { get; private set; }

    public IPEndPoint? Client { get; init; }

    /// <summary>SIZE= of the current transaction's MAIL FROM (0: none), for the quota check at RCPT.</summary>
    public long AnnouncedSize { get; set; }

    /// <summary>Accepted on an LMTP socket (RFC 2033): LHLO, and one reply per recipient after the message.</summary>
    public bool Lmtp { get; set; }

    /// <summary>Accepted recipients of the current transaction, by their RecipientRequest.Key (the object the adapter
    /// keeps for each, compared by reference): the local recipients each RCPT reached (one user, or an alias's members).</summary>
    public Dictionary<object, IReadOnlyList<RoutedRecipient>> Routes { get; } = new(ReferenceEqualityComparer.Instance);

    /// <summary>HELO (<paramref name="esmtp"/> false) or EHLO/LHLO: a new greeting ends any transaction.</summary>
    public void Greeted(string name, bool esmtp)
    {
        (HeloName, Esmtp) = (name, esmtp);
        Routes.Clear();
    }

    /// <summary>MAIL or RSET: the recipients of an earlier transaction are forgotten.</summary>
    public void TransactionReset() => Routes.Clear();

    private IDisposable? _deliveryInFlight;

    /// <summary>The message being delivered, counted by SessionGate until its reply has been written (a graceful stop
    /// waits for that, so the reply is never cut off by the stop).</summary>
    public void DeliveryStarted(IDisposable inFlight) => Interlocked.Exchange(ref _deliveryInFlight, inFlight)?.Dispose();

    /// <summary>The reply is out (or the session is gone).</summary>
    public void DeliveryAnswered() => Interlocked.Exchange(ref _deliveryInFlight, null)?.Dispose();
}
