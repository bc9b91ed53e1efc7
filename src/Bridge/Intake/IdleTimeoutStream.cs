// Job: the input side of a session's socket, with an inactivity limit on every read (Bridge:CommandTimeout),
// also while a message is being received: SmtpServer has none during DATA, so a client that stops sending
// (or trickles) would hold its session for as long as the connection lives.
// Failure: when the limit passes, "421 4.4.2" is written and the connection closed; the MTA retries later.
using System.Net.Sockets;

namespace Bridge.Intake;

internal sealed class IdleTimeoutStream(NetworkStream inner, TimeSpan idleLimit) : Stream
{
    private static readonly byte[] TimeoutReply = "421 4.4.2 Idle timeout, closing connection\r\n"u8.ToArray();

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        idle.CancelAfter(idleLimit);
        try
        {
            return await inner.ReadAsync(buffer, idle.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await inner.WriteAsync(TimeoutReply, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
            {
                // the client is gone already
            }
            inner.Socket.Close();
            return 0; // end of input: the session ends without a reply of SmtpServer's own
        }
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
