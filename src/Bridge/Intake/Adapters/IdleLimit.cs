// Job: the inactivity limit on every read of a session's socket (Bridge:CommandTimeout), also inside DATA, where the
// library has none; the same read ends early when the session is evicted (SlowSessionEviction).
// Corrects: the library waits for a command line only with its own timeout, and for message bytes without any.
// Failure: null when the limit passed or the session was evicted (the caller says which); 0 when the client reset
// or closed the connection; the caller's own cancellation propagates.
using System.Net.Sockets;

namespace Bridge.Intake.Adapters;

internal sealed class IdleLimit(TimeSpan limit)
{
    public async Task<int?> ReadAsync(Stream socket, Memory<byte> into, CancellationToken evicted, CancellationToken cancellationToken)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, evicted);
        idle.CancelAfter(limit);
        try
        {
            return await socket.ReadAsync(into, idle.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            return 0; // reset by the client: the end of this session
        }
    }
}
