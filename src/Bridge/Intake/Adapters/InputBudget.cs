// Job: the memory a session may make Bridge hold. The library buffers a whole command line or message before
// looking at it, so bytes received since the last reply are capped per session at 2 x Bridge:MaxMessageBytes + 1 MiB
// (dot-stuffing can double a body), a single line at Bridge:MaxLineBytes, and for all sessions together: beyond
// 1 MiB each, what sessions hold unanswered is charged to SessionGate's Bridge:MaxBytesInFlight. Messages merely over
// MaxMessageBytes still get their 552 5.3.4 from MessageIntake; this catches a client that would stream without end,
// and many that would together.
// Failure: Admit returns the reply to close with ("500 5.5.2", "552 5.3.4", "452 4.3.1"); nothing is thrown.
namespace Bridge.Intake.Adapters;

internal sealed class InputBudget(long maxMessageBytes, int maxLineBytes, SessionGate? gate)
{
    /// <summary>What any session may hold unanswered without charge to Bridge:MaxBytesInFlight: a well-behaved
    /// client's ordinary message is always served, whatever others do.</summary>
    public const long FreeBytes = 1 << 20;

    private readonly long _maxBytesBetweenReplies = (2 * maxMessageBytes) + (1 << 20);
    private long _sinceReply;
    private long _charged;
    private long _lineLength;

    /// <summary>Bytes received since the last reply.</summary>
    public long SinceReply => Interlocked.Read(ref _sinceReply);

    /// <summary>Counts <paramref name="chunk"/>, just read, under every limit: null when it is within them, else the
    /// reply to close the session with.</summary>
    public string? Admit(ReadOnlySpan<byte> chunk)
    {
        if (!WithinLineLimit(chunk))
        {
            return Replies.LineTooLong;
        }
        var since = Interlocked.Add(ref _sinceReply, chunk.Length);
        if (since > _maxBytesBetweenReplies)
        {
            return Replies.StreamTooLong;
        }
        if (gate is not null)
        {
            var owed = Math.Max(0, since - FreeBytes) - Interlocked.Read(ref _charged);
            if (owed > 0)
            {
                if (!gate.TryCharge(owed))
                {
                    return Replies.BudgetSpent;
                }
                Interlocked.Add(ref _charged, owed);
            }
        }
        return null;
    }

    /// <summary>The client got an answer: what it sent before is no longer held.</summary>
    public void ReplyWritten()
    {
        Interlocked.Exchange(ref _sinceReply, 0);
        Release();
    }

    /// <summary>Releases what this session holds of the shared byte budget.</summary>
    public void Release()
    {
        var charged = Interlocked.Exchange(ref _charged, 0);
        if (charged > 0)
        {
            gate?.Uncharge(charged);
        }
    }

    /// <summary>Follows the line being received across reads; false once any line is longer than the limit.</summary>
    private bool WithinLineLimit(ReadOnlySpan<byte> chunk)
    {
        var current = _lineLength;
        for (var lf = chunk.IndexOf((byte)'\n'); lf >= 0; lf = chunk.IndexOf((byte)'\n'))
        {
            if (current + lf > maxLineBytes)
            {
                return false;
            }
            current = 0;
            chunk = chunk[(lf + 1)..];
        }
        _lineLength = current + chunk.Length;
        return _lineLength <= maxLineBytes;
    }
}
