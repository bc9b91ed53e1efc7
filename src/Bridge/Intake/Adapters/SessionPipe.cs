// Job: the duplex pipe SmtpServer runs a session on: reads from the socket through InputGuardStream (idle
// and memory limits), writes replies through ReplyTextStream, which tells the guard when a reply went out and
// holds replies until the guard is about to wait for the client (then they leave together).
// Corrects: the library reads and writes the raw socket with no limit of time or memory and no way to see its
// replies; this pipe is the one seam through which the other adapters reach the bytes. STARTTLS is not offered
// (Bridge listens on loopback for the local MTA).
// The guard's slot is registered with the SessionGate (shared byte budget, giving way when all slots are taken).
// Failure: disposing closes the socket (once), gives back the budget and tells the SessionGate; an upgrade request is refused.
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using SmtpServer.IO;

namespace Bridge.Intake.Adapters;

internal sealed class SessionPipe : ISecurableDuplexPipe
{
    private readonly Socket _client;
    private readonly NetworkStream _stream;
    private int _disposed;

    private readonly InputGuardStream _guard;

    public SessionPipe(Socket client, SessionGate gate, SessionWire session)
    {
        _client = client;
        _stream = new NetworkStream(client, ownsSocket: false);
        _gate = gate;
        _session = session;
        _guard = new InputGuardStream(_stream, gate.IdleLimit, gate.MaxMessageBytes, gate.MaxLineBytes, gate, session);
        gate.Register(_guard.Slot);
        _replies = new ReplyTextStream(_stream, _guard.ReplyWritten, session);
        _guard.BeforeWait = _replies.SendPendingAsync;
        Input = PipeReader.Create(_guard);
        Output = PipeWriter.Create(_replies);
    }

    private readonly ReplyTextStream _replies;

    private readonly SessionGate _gate;
    private readonly SessionWire _session;

    public PipeReader Input { get; }

    public PipeWriter Output { get; }

    public bool IsSecure => false;

    public SslProtocols SslProtocol => SslProtocols.None;

    public Task UpgradeAsync(X509Certificate certificate, SslProtocols protocols, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("STARTTLS is not offered");

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        try
        {
            _replies.SendPending(); // what the session said last (221, 421, a final 250) before the socket closes
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // the client is gone
        }
        _stream.Dispose();
        _client.Dispose();
        _guard.ReleaseBudget();
        _session.State.DeliveryAnswered();
        _gate.Unregister(_guard.Slot);
        _gate.Release();
    }
}
