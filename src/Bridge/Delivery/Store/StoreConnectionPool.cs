// Job: at most Bridge:Legacy:MaxConnections sessions with the store, reused across messages (an open LMTP/SMTP
// session costs the store a greeting, LHLO and often a fork). A changed endpoint (reload) retires the old
// connections; an idle connection older than 30 s, or one the store has closed meanwhile (readable while idle), is
// closed instead of reused, so a message never goes out on a connection that is already gone.
// Failure: opening a connection throws as SmtpConnection.OpenAsync does; the slot is given back, as it is whatever
// happens to a returned connection.
using Bridge.Delivery.Smtp;

namespace Bridge.Delivery.Store;

public sealed class StoreConnectionPool : IAsyncDisposable
{
    private static readonly TimeSpan MaxIdle = TimeSpan.FromSeconds(30);

    private readonly Func<SmtpEndpoint, CancellationToken, Task<SmtpConnection>> _open;

    public StoreConnectionPool()
        : this(SmtpConnection.OpenAsync)
    {
    }

    /// <summary>A pool whose connections <paramref name="open"/> makes (the fast tier's scripted stores).</summary>
    internal StoreConnectionPool(Func<SmtpEndpoint, CancellationToken, Task<SmtpConnection>> open) => _open = open;

    private readonly Lock _gate = new();
    private SmtpEndpoint? _endpoint;
    private SemaphoreSlim _slots = new(1, 1);
    private readonly Stack<(SmtpConnection Connection, DateTime Since)> _idle = new();

    internal async Task<Lease> RentAsync(SmtpEndpoint endpoint, CancellationToken cancellationToken)
    {
        SemaphoreSlim slots;
        List<SmtpConnection> retired = [];
        lock (_gate)
        {
            if (_endpoint != endpoint)
            {
                _endpoint = endpoint;
                _slots = new SemaphoreSlim(endpoint.MaxConnections, endpoint.MaxConnections);
                retired.AddRange(_idle.Select(i => i.Connection));
                _idle.Clear();
            }
            slots = _slots;
        }
        foreach (var old in retired)
        {
            await old.DisposeAsync().ConfigureAwait(false);
        }

        await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (true)
            {
                (SmtpConnection Connection, DateTime Since) idle;
                lock (_gate)
                {
                    if (!_idle.TryPop(out idle))
                    {
                        break;
                    }
                }
                if (DateTime.UtcNow - idle.Since < MaxIdle && idle.Connection.Endpoint == endpoint && !idle.Connection.LooksClosed())
                {
                    return new Lease(this, slots, idle.Connection, reused: true);
                }
                await idle.Connection.DisposeAsync().ConfigureAwait(false);
            }
            var fresh = await _open(endpoint, cancellationToken).ConfigureAwait(false);
            return new Lease(this, slots, fresh, reused: false);
        }
        catch
        {
            slots.Release();
            throw;
        }
    }

    private async Task ReturnAsync(SmtpConnection connection, SemaphoreSlim slots)
    {
        try
        {
            var keep = false;
            lock (_gate)
            {
                if (connection.Reusable && connection.Endpoint == _endpoint && ReferenceEquals(slots, _slots))
                {
                    _idle.Push((connection, DateTime.UtcNow));
                    keep = true;
                }
            }
            if (!keep)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            slots.Release(); // whatever happened to the connection, its slot is free again
        }
    }

    public async ValueTask DisposeAsync()
    {
        List<SmtpConnection> all;
        lock (_gate)
        {
            all = _idle.Select(i => i.Connection).ToList();
            _idle.Clear();
        }
        foreach (var connection in all)
        {
            using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(5)); // a store that never answers QUIT
            await connection.QuitAsync(patience.Token).ConfigureAwait(false);
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>One rented connection; Reconnect replaces a stale reused one inside the same slot.</summary>
    internal sealed class Lease(StoreConnectionPool pool, SemaphoreSlim slots, SmtpConnection connection, bool reused) : IAsyncDisposable
    {
        public SmtpConnection Connection { get; private set; } = connection;

        public bool Reused { get; private set; } = reused;

        public async Task ReconnectAsync(CancellationToken cancellationToken)
        {
            var endpoint = Connection.Endpoint;
            await Connection.DisposeAsync().ConfigureAwait(false);
            Connection = await pool._open(endpoint, cancellationToken).ConfigureAwait(false);
            Reused = false;
        }

        public ValueTask DisposeAsync() => new(pool.ReturnAsync(Connection, slots));
    }
}
