// Job: what the soak knows happened, written as it happens, for the final check: every message a front accepted
// (its id, the users it must reach, its fingerprint, when it was sent), every message another program appended to a
// spool, what the IMAP reader expunged (surely, or perhaps: an EXPUNGE whose answer was lost), and every fault with
// its time (the kills and store stops are what may explain a duplicate).
// Failure: none; thread-safe records.
using System.Collections.Concurrent;

namespace Bridge.Soak;

internal sealed record SentMessage(string Id, IReadOnlyList<string> Users, string Fingerprint, DateTimeOffset Sent, string Via, int Bytes);

internal sealed record FaultEvent(string Kind, DateTimeOffset Start, DateTimeOffset End);

internal sealed class Ledger
{
    public ConcurrentDictionary<string, SentMessage> Sent { get; } = new();
    public ConcurrentBag<(string Id, string User)> Expunged { get; } = [];
    public ConcurrentBag<(string Id, string User)> PerhapsExpunged { get; } = [];
    public ConcurrentQueue<FaultEvent> Faults { get; } = new();
    public ConcurrentDictionary<string, int> Refused { get; } = new();
    private long _rssPeak;

    public long RssPeakBytes => Interlocked.Read(ref _rssPeak);

    public void Fault(string kind, DateTimeOffset start, DateTimeOffset? end = null) => Faults.Enqueue(new FaultEvent(kind, start, end ?? start));

    public void Refusal(string why) => Refused.AddOrUpdate(why, 1, (_, n) => n + 1);

    public void Rss(long bytes)
    {
        long seen;
        while (bytes > (seen = Interlocked.Read(ref _rssPeak)) && Interlocked.CompareExchange(ref _rssPeak, bytes, seen) != seen)
        {
        }
    }
}
