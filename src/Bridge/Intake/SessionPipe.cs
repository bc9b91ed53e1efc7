// Job: the duplex pipe SmtpServer runs a session on: reads from the socket through InputGuardStream (idle
// and memory limits), writes replies through ReplyTextStream, which tells the guard when a reply went out. STARTTLS is not offered (Bridge listens on loopback for the local MTA).
// Failure: disposing closes the socket (once) and tells the SessionGate; an upgrade request is refused.
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using SmtpServer.IO;

namespace Bridge.Intake;

internal sealed class SessionPipe : ISecurableDuplexPipe
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private readonly Action _onDispose;
    private int _disposed;

    public SessionPipe(TcpClient client, TimeSpan idleLimit, long maxMessageBytes, int maxLineBytes, Action onDispose)
    {
        _client = client;
        _stream = client.GetStream();
        _onDispose = onDispose;
        var guard = new InputGuardStream(_stream, idleLimit, (2 * maxMessageBytes) + (1 << 20), maxLineBytes);
        Input = PipeReader.Create(guard);
        Output = PipeWriter.Create(new ReplyTextStream(_stream, guard.ReplyWritten));
    }

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
        _stream.Dispose();
        _client.Dispose();
        _onDispose();
    }
}
