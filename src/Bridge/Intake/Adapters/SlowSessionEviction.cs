// Job: how slowly a session waits for its client, for SessionGate, which evicts the slowest when every slot is taken:
// the time since its last reply and the bytes received in it (InputBudget), not counting while Bridge itself has the
// turn (a command or message handed to the library and not yet answered).
// Failure: none; Evict is false the second time, and its token ends the session's pending read (IdleLimit).
using System.Diagnostics;

namespace Bridge.Intake.Adapters;

internal sealed class SlowSessionEviction(InputBudget budget) : ISessionSlot, IDisposable
{
    /// <summary>Below this rate (bytes/s since its last reply) a session counts as slow (Postfix's smtpd_min_data_rate).</summary>
    public const double MinDataRate = 500;

    private readonly CancellationTokenSource _evict = new();
    private long _unitStarted = Stopwatch.GetTimestamp();
    private volatile bool _awaitingServer;
    private int _evicted;

    /// <summary>Cancelled when the session is evicted.</summary>
    public CancellationToken Token => _evict.Token;

    public bool Evicted => Volatile.Read(ref _evicted) != 0;

    /// <summary>A whole command or message was handed to the library: Bridge has the turn until it replies.</summary>
    public void AwaitingServer() => _awaitingServer = true;

    /// <summary>The client got an answer: it has the turn again, from now.</summary>
    public void ReplyWritten()
    {
        Volatile.Write(ref _unitStarted, Stopwatch.GetTimestamp());
        _awaitingServer = false;
    }

    /// <summary>Waiting for its client (not for Bridge) longer than <paramref name="grace"/>, at under MinDataRate.</summary>
    public bool IsSlow(TimeSpan grace)
    {
        if (_awaitingServer || Evicted)
        {
            return false;
        }
        var waited = Stopwatch.GetElapsedTime(Volatile.Read(ref _unitStarted));
        return waited > grace && budget.SinceReply / waited.TotalSeconds < MinDataRate;
    }

    public TimeSpan Waiting => Stopwatch.GetElapsedTime(Volatile.Read(ref _unitStarted));

    /// <summary>Gives up this session's slot: its pending read ends with 421 4.4.2 and the connection is closed.</summary>
    public bool Evict()
    {
        if (Interlocked.Exchange(ref _evicted, 1) != 0)
        {
            return false;
        }
        _evict.Cancel();
        return true;
    }

    public void Dispose() => _evict.Dispose();
}
