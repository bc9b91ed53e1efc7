// Job: the input side of a session's socket, guarding what SmtpServer does not:
// - an inactivity limit on every read (Bridge:CommandTimeout), also inside DATA, where SmtpServer has none;
// - memory: SmtpServer buffers a whole command line or message before looking at it, so bytes received since the
//   last reply are capped per session at 2 x Bridge:MaxMessageBytes + 1 MiB (dot-stuffing can double a body), a
//   single line at Bridge:MaxLineBytes, and for all sessions together: beyond 1 MiB each, what sessions hold
//   unanswered is charged to SessionGate's Bridge:MaxBytesInFlight (452 4.3.1 when it is spent). Messages merely
//   over MaxMessageBytes still get their 552 5.3.4 from MessageIntake; this catches a client that would stream
//   without end, and many that would together;
// - commands reach SmtpServer one line per read, each MAIL/RCPT line through CommandScreen (malformed or unoffered
//   parameters get their RFC reply instead of crashing the session), and on an LMTP session every line through
//   LmtpDialect (LHLO); message bytes (after a 354, up to the
//   "CRLF.CRLF" that ends them) pass unchanged and in bulk;
// - SessionGate can evict a session that waits slowly for its client when every slot is taken (Evict).
// Failure: past a limit, the reply ("421 4.4.2", "552 5.3.4", "500 5.5.2", "452 4.3.1") is written and the
// connection closed; SmtpServer then sees the end of input and writes nothing of its own.
using System.Diagnostics;
using System.Net.Sockets;

namespace Bridge.Intake.Adapters;

internal sealed class InputGuardStream : Stream
{
    /// <summary>What any session may hold unanswered without charge to Bridge:MaxBytesInFlight: a well-behaved
    /// client's ordinary message is always served, whatever others do.</summary>
    public const long FreeBytes = 1 << 20;

    /// <summary>Below this rate (bytes/s since its last reply) a session counts as slow (Postfix's smtpd_min_data_rate).</summary>
    public const double MinDataRate = 500;

    private static readonly byte[] EndOfData = "\r\n.\r\n"u8.ToArray();

    private readonly NetworkStream _inner;
    private readonly TimeSpan _idleLimit;
    private readonly long _maxBytesBetweenReplies;
    private readonly int _maxLineBytes;
    private readonly long _maxMessageBytes;
    private readonly SessionGate? _gate;
    private readonly SessionState? _session;
    private readonly CancellationTokenSource _evict = new();

    private byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;
    private byte[]? _pending;
    private int _pendingAt;
    private bool _inData;
    private int _endMatch;
    private long _sinceReply;
    private long _charged;
    private long _lineLength;
    private long _unitStarted = Stopwatch.GetTimestamp();
    private volatile bool _awaitingServer;
    private int _evicted;

    public InputGuardStream(NetworkStream inner, TimeSpan idleLimit, long maxMessageBytes, int maxLineBytes,
        SessionGate? gate = null, SessionState? session = null)
    {
        _inner = inner;
        _idleLimit = idleLimit;
        _maxMessageBytes = maxMessageBytes;
        _maxBytesBetweenReplies = (2 * maxMessageBytes) + (1 << 20);
        _maxLineBytes = maxLineBytes;
        _gate = gate;
        _session = session;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>Runs before every read of the socket, i.e. before the session waits for its client: the output side
    /// sends the replies it holds (ReplyTextStream.SendPendingAsync).</summary>
    public Func<ValueTask>? BeforeWait { get; set; }

    /// <summary>Called by the output side: the client got an answer, a new command or message may follow;
    /// <paramref name="opensData"/> when that answer was 354 (message bytes follow).</summary>
    public void ReplyWritten(bool opensData)
    {
        Interlocked.Exchange(ref _sinceReply, 0);
        var charged = Interlocked.Exchange(ref _charged, 0);
        if (charged > 0)
        {
            _gate?.Uncharge(charged);
        }
        Volatile.Write(ref _unitStarted, Stopwatch.GetTimestamp());
        _awaitingServer = false;
        _inData = opensData;
        _endMatch = opensData ? 2 : 0; // the CRLF that ended the DATA command: "." CRLF right away ends an empty message
    }

    /// <summary>Waiting for its client (not for Bridge) longer than <paramref name="grace"/>, at under MinDataRate.</summary>
    public bool IsSlow(TimeSpan grace)
    {
        if (_awaitingServer || Volatile.Read(ref _evicted) != 0)
        {
            return false;
        }
        var waited = Stopwatch.GetElapsedTime(Volatile.Read(ref _unitStarted));
        return waited > grace && Interlocked.Read(ref _sinceReply) / waited.TotalSeconds < MinDataRate;
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

    /// <summary>Releases what this session holds of the shared byte budget (its end).</summary>
    public void ReleaseBudget()
    {
        var charged = Interlocked.Exchange(ref _charged, 0);
        if (charged > 0)
        {
            _gate?.Uncharge(charged);
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (_pending is not null)
            {
                var n = Math.Min(buffer.Length, _pending.Length - _pendingAt);
                _pending.AsSpan(_pendingAt, n).CopyTo(buffer.Span);
                _pendingAt += n;
                if (_pendingAt == _pending.Length)
                {
                    _pending = null;
                }
                return n;
            }
            if (_start < _end)
            {
                var handed = _inData ? HandOutData(buffer.Span) : HandOutLine(buffer.Span);
                if (handed > 0)
                {
                    return handed;
                }
                if (_pending is not null)
                {
                    continue;
                }
            }
            var read = await FillAsync(cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                if (_start < _end && !_inData)
                {
                    // the client's last bytes, without a line end: SmtpServer sees them, then the end of input
                    var rest = Math.Min(buffer.Length, _end - _start);
                    _buffer.AsSpan(_start, rest).CopyTo(buffer.Span);
                    _start += rest;
                    return rest;
                }
                return 0;
            }
        }
    }

    /// <summary>Message bytes up to and including the CRLF "." CRLF that ends them (then back to commands).</summary>
    private int HandOutData(Span<byte> destination)
    {
        var available = _buffer.AsSpan(_start, _end - _start);
        var stop = Scan(available, _endMatch, out var tail);
        var give = stop >= 0 ? stop : available.Length;
        var n = Math.Min(give, destination.Length);
        available[..n].CopyTo(destination);
        if (n == give)
        {
            if (stop >= 0)
            {
                _inData = false;
                _endMatch = 0;
                _awaitingServer = true; // the message is complete: Bridge delivers it now
            }
            else
            {
                _endMatch = tail;
            }
        }
        else
        {
            Scan(available[..n], _endMatch, out tail);
            _endMatch = tail;
        }
        _start += n;
        return n;
    }

    /// <summary>One complete command line (screened), or 0 when the buffer holds no line end yet.</summary>
    private int HandOutLine(Span<byte> destination)
    {
        var available = _buffer.AsSpan(_start, _end - _start);
        var lf = available.IndexOf((byte)'\n');
        if (lf < 0)
        {
            return 0;
        }
        var line = available[..(lf + 1)];
        _start += lf + 1;
        _awaitingServer = true;
        ReadOnlySpan<byte> output = line;
        if (_session is not null)
        {
            _session.PendingRefusal = null;
            var verdict = CommandScreen.Screen(line, _maxMessageBytes, _session.Smtputf8);
            if (verdict.Smtputf8 is { } utf8)
            {
                _session.Smtputf8 = utf8; // a MAIL line: its transaction's addresses may be UTF-8 when it asked SMTPUTF8
            }
            _session.PendingRefusal = verdict.Refusal;
            _session.PendingRcptParameters = verdict.RcptParameters;
            if (verdict.Replacement is not null)
            {
                output = verdict.Replacement;
            }
            if (_session.Lmtp && LmtpDialect.Translate(line) is ({ } translated, var reply))
            {
                output = translated;
                _session.NextReplyOverride = reply;
            }
        }
        if (output.Length <= destination.Length)
        {
            output.CopyTo(destination);
            return output.Length;
        }
        _pending = output.ToArray();
        _pendingAt = 0;
        return 0;
    }

    /// <summary>Index just after "CRLF.CRLF" in <paramref name="span"/> given <paramref name="state"/> bytes of it
    /// already seen before, or -1 with the state at the span's end in <paramref name="tail"/>.</summary>
    internal static int Scan(ReadOnlySpan<byte> span, int state, out int tail)
    {
        tail = 0;
        var found = -1;
        if (state > 0)
        {
            var s = state;
            for (var i = 0; i < span.Length && i < EndOfData.Length - state; i++)
            {
                s = Step(s, span[i]);
                if (s == EndOfData.Length)
                {
                    return i + 1;
                }
                if (s == 0)
                {
                    break;
                }
            }
        }
        var at = span.IndexOf(EndOfData);
        if (at >= 0)
        {
            found = at + EndOfData.Length;
            return found;
        }
        if (span.Length < EndOfData.Length - 1)
        {
            var s = state;
            foreach (var b in span)
            {
                s = Step(s, b);
            }
            tail = s;
            return -1;
        }
        var t = 0;
        foreach (var b in span[^(EndOfData.Length - 1)..])
        {
            t = Step(t, b);
        }
        tail = t;
        return -1;

        static int Step(int s, byte b) => b == EndOfData[s] ? s + 1 : b == (byte)'\r' ? 1 : 0;
    }

    /// <summary>Reads more from the socket into the buffer under every limit; 0 at the end of input or after a refusal.</summary>
    private async Task<int> FillAsync(CancellationToken cancellationToken)
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2); // a long command line; MaxLineBytes bounds it
        }
        if (BeforeWait is { } beforeWait)
        {
            try
            {
                await beforeWait().ConfigureAwait(false); // the replies held so far go out before we wait
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
            {
                return 0; // the client is gone: the end of this session
            }
        }
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _evict.Token);
        idle.CancelAfter(_idleLimit);
        int read;
        try
        {
            read = await _inner.ReadAsync(_buffer.AsMemory(_end, Math.Min(_buffer.Length - _end, 64 * 1024)), idle.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return await RefuseAsync(Volatile.Read(ref _evicted) != 0
                ? "421 4.4.2 Too slow while every connection slot is in use, closing connection"
                : "421 4.4.2 Idle timeout, closing connection").ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            return 0; // reset by the client: the end of this session
        }
        if (read == 0)
        {
            return 0;
        }

        if (!WithinLineLimit(_buffer.AsSpan(_end, read)))
        {
            return await RefuseAsync("500 5.5.2 Line too long, closing connection").ConfigureAwait(false);
        }
        var since = Interlocked.Add(ref _sinceReply, read);
        if (since > _maxBytesBetweenReplies)
        {
            return await RefuseAsync("552 5.3.4 Message size exceeds fixed limit, closing connection").ConfigureAwait(false);
        }
        if (_gate is not null)
        {
            var owed = Math.Max(0, since - FreeBytes) - Interlocked.Read(ref _charged);
            if (owed > 0)
            {
                if (!_gate.TryCharge(owed))
                {
                    return await RefuseAsync("452 4.3.1 Too much mail in transit (Bridge:MaxBytesInFlight), try again later").ConfigureAwait(false);
                }
                Interlocked.Add(ref _charged, owed);
            }
        }
        _end += read;
        return read;
    }

    /// <summary>Follows the line being received across reads; false once any line is longer than the limit.</summary>
    private bool WithinLineLimit(ReadOnlySpan<byte> chunk)
    {
        var current = _lineLength;
        for (var lf = chunk.IndexOf((byte)'\n'); lf >= 0; lf = chunk.IndexOf((byte)'\n'))
        {
            if (current + lf > _maxLineBytes)
            {
                return false;
            }
            current = 0;
            chunk = chunk[(lf + 1)..];
        }
        _lineLength = current + chunk.Length;
        return _lineLength <= _maxLineBytes;
    }

    private async Task<int> RefuseAsync(string reply)
    {
        _start = _end = 0;
        _pending = null;
        ReleaseBudget();
        try
        {
            await _inner.WriteAsync(System.Text.Encoding.ASCII.GetBytes(reply + "\r\n"), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // the client is gone already
        }
        // Closing with unread input would send RST, which can destroy the reply at the client: send FIN after
        // the reply, then drain what is in flight (at most 1 s and 1 MiB).
        try
        {
            _inner.Socket.Shutdown(SocketShutdown.Send);
            using var drain = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            var sink = new byte[64 * 1024];
            var drained = 0;
            int n;
            while (drained < (1 << 20) && (n = await _inner.ReadAsync(sink, drain.Token).ConfigureAwait(false)) > 0)
            {
                drained += n;
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // gone, or still sending after a second: close anyway
        }
        _inner.Socket.Close();
        return 0; // end of input: the session ends without a reply of SmtpServer's own
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("reads are asynchronous");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            ReleaseBudget();
            _evict.Dispose();
        }
        base.Dispose(disposing);
    }
}
