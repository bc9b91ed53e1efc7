// Job: the duplex pipe SmtpServer runs a session on: reads from the socket through IdleTimeoutStream, writes
// replies through ReplyTextStream. STARTTLS is not offered (Bridge listens on loopback for the local MTA).
// Failure: disposing closes the socket (once) and tells the SessionGate; an upgrade request is refused.
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using SmtpServer.IO;

namespace Bridge.Intake;

internal sealed class SessionPipe(TcpClient client, TimeSpan idleLimit, Action onDispose) : ISecurableDuplexPipe
{
    private readonly NetworkStream _stream = client.GetStream();
    private int _disposed;

    public PipeReader Input { get; } = PipeReader.Create(new IdleTimeoutStream(client.GetStream(), idleLimit));

    public PipeWriter Output { get; } = PipeWriter.Create(new ReplyTextStream(client.GetStream()));

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
        client.Dispose();
        onDispose();
    }
}
