// Job: the input side of a session's socket, guarding what SmtpServer does not, composed of one part per job:
// - IdleLimit: an inactivity limit on every read (Bridge:CommandTimeout), also inside DATA, where SmtpServer has none;
// - InputBudget: memory (bytes since the last reply, one line, and the byte budget all sessions share);
// - CommandFraming: commands reach SmtpServer one line per read, screened (CommandScreen, LmtpDialect); message bytes
//   pass unchanged and in bulk;
// - SlowSessionEviction: SessionGate can evict a session that waits slowly for its client when every slot is taken.
// This type is the one place they are put together: it reads the socket, applies them in that order, and when one
// says stop it writes the reply and closes.
// Failure: past a limit, the reply ("421 4.4.2", "552 5.3.4", "500 5.5.2", "452 4.3.1") is written and the
// connection closed; SmtpServer then sees the end of input and writes nothing of its own.
using System.Net.Sockets;

namespace Bridge.Intake.Adapters;

internal sealed class InputGuardStream : Stream
{
    private readonly NetworkStream _inner;
    private readonly IdleLimit _idle;
    private readonly InputBudget _budget;
    private readonly SlowSessionEviction _eviction;
    private readonly CommandFraming _framing;

    public InputGuardStream(NetworkStream inner, TimeSpan idleLimit, long maxMessageBytes, int maxLineBytes,
        SessionGate? gate = null, SessionWire? session = null)
    {
        _inner = inner;
        _idle = new IdleLimit(idleLimit);
        _budget = new InputBudget(maxMessageBytes, maxLineBytes, gate);
        _eviction = new SlowSessionEviction(_budget);
        _framing = new CommandFraming(maxMessageBytes, session, _eviction.AwaitingServer);
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>What SessionGate sees of this session (to evict it when it is the slowest and a slot is needed).</summary>
    public ISessionSlot Slot => _eviction;

    /// <summary>Runs before every read of the socket, i.e. before the session waits for its client: the output side
    /// sends the replies it holds (ReplyTextStream.SendPendingAsync).</summary>
    public Func<ValueTask>? BeforeWait { get; set; }

    /// <summary>Called by the output side: the client got an answer, a new command or message may follow;
    /// <paramref name="opensData"/> when that answer was 354 (message bytes follow).</summary>
    public void ReplyWritten(bool opensData)
    {
        _budget.ReplyWritten();
        _eviction.ReplyWritten();
        _framing.ReplyWritten(opensData);
    }

    /// <summary>Releases what this session holds of the shared byte budget (its end).</summary>
    public void ReleaseBudget() => _budget.Release();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            var handed = _framing.HandOut(buffer.Span);
            if (handed > 0)
            {
                return handed;
            }
            if (await FillAsync(cancellationToken).ConfigureAwait(false) == 0)
            {
                return _framing.HandOutRest(buffer.Span);
            }
        }
    }

    /// <summary>Reads more from the socket under every limit; 0 at the end of input or after a refusal.</summary>
    private async Task<int> FillAsync(CancellationToken cancellationToken)
    {
        var space = _framing.Space();
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
        var read = await _idle.ReadAsync(_inner, space, _eviction.Token, cancellationToken).ConfigureAwait(false);
        if (read is null)
        {
            return await RefuseAsync(_eviction.Evicted ? Replies.TooSlowForSlot : Replies.IdleTimeout).ConfigureAwait(false);
        }
        if (read == 0)
        {
            return 0;
        }
        if (_budget.Admit(space.Span[..read.Value]) is { } refusal)
        {
            return await RefuseAsync(refusal).ConfigureAwait(false);
        }
        _framing.Filled(read.Value);
        return read.Value;
    }

    private async Task<int> RefuseAsync(string reply)
    {
        _framing.Clear();
        _budget.Release();
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
            _budget.Release();
            _eviction.Dispose();
        }
        base.Dispose(disposing);
    }
}
