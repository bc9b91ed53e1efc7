// Job: the input side of a session's socket, guarding what SmtpServer does not:
// - an inactivity limit on every read (Bridge:CommandTimeout), also inside DATA, where SmtpServer has none;
// - memory: SmtpServer buffers a whole command line or message before looking at it, so bytes received
//   since the last reply are capped at 2 x Bridge:MaxMessageBytes + 1 MiB (dot-stuffing can double a body)
//   and a single line at Bridge:MaxLineBytes. Messages merely over MaxMessageBytes still get their 552 5.3.4 from
//   MessageIntake; this catches a client that would stream without end.
// Failure: past a limit, the reply ("421 4.4.2", "552 5.3.4", "500 5.5.2") is written and the connection
// closed; SmtpServer then sees the end of input and writes nothing of its own.
using System.Net.Sockets;

namespace Bridge.Intake;

internal sealed class InputGuardStream(NetworkStream inner, TimeSpan idleLimit, long maxBytesBetweenReplies, int maxLineBytes) : Stream
{
    private long _sinceReply;
    private long _lineLength;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>Called by the output side: the client got an answer, a new command or message may follow.</summary>
    public void ReplyWritten() => Interlocked.Exchange(ref _sinceReply, 0);

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        idle.CancelAfter(idleLimit);
        int read;
        try
        {
            read = await inner.ReadAsync(buffer, idle.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return await RefuseAsync("421 4.4.2 Idle timeout, closing connection").ConfigureAwait(false);
        }

        if (!WithinLineLimit(buffer.Span[..read]))
        {
            return await RefuseAsync("500 5.5.2 Line too long, closing connection").ConfigureAwait(false);
        }
        if (Interlocked.Add(ref _sinceReply, read) > maxBytesBetweenReplies)
        {
            return await RefuseAsync("552 5.3.4 Message size exceeds fixed limit, closing connection").ConfigureAwait(false);
        }
        return read;
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

    private async Task<int> RefuseAsync(string reply)
    {
        try
        {
            await inner.WriteAsync(System.Text.Encoding.ASCII.GetBytes(reply + "\r\n"), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // the client is gone already
        }
        // Closing with unread input would send RST, which can destroy the reply at the client: send FIN after
        // the reply, then drain what is in flight (at most 1 s and 1 MiB).
        try
        {
            inner.Socket.Shutdown(SocketShutdown.Send);
            using var drain = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            var sink = new byte[64 * 1024];
            var drained = 0;
            int n;
            while (drained < (1 << 20) && (n = await inner.ReadAsync(sink, drain.Token).ConfigureAwait(false)) > 0)
            {
                drained += n;
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // gone, or still sending after a second: close anyway
        }
        inner.Socket.Close();
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
}
