// Job: one async lock per mailbox path inside this process. fcntl-style locks never exclude threads of one
// process, so concurrent sessions to the same mailbox queue here before touching the file.
// Failure: a wait that times out or is cancelled returns null (caller answers 451 4.2.0 / shutdown).
using System.Collections.Concurrent;

namespace Bridge.Delivery.Spool;

public sealed class InProcessMailboxLocks
{
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _locks = new(StringComparer.Ordinal);

    public async Task<IDisposable?> TryEnterAsync(string mailboxPath, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var gate = _locks.GetOrAdd(mailboxPath, _ => new SemaphoreSlim(1, 1));
        try
        {
            return await gate.WaitAsync(timeout, cancellationToken).ConfigureAwait(false) ? new Releaser(gate) : null;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    private sealed class Releaser(SemaphoreSlim gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release();
            }
        }
    }
}
