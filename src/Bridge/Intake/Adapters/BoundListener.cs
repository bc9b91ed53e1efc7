// Job: own the listening socket. It is bound before the host starts, so that a bind failure (port 627 needs
// root or CAP_NET_BIND_SERVICE; port in use) is one clear line naming the setting, not a stack trace; then
// SmtpServer takes connections from it through IEndpointListenerFactory. Corrects: the library binds only when it
// starts, inside the host, where a bind failure is an unhandled exception, and accepts every client it is offered. Each accepted client passes the
// SessionGate first; StopAccepting closes the socket (an MTA then sees "connection refused" and queues).
// Failure: Bind throws ListenerBindException with the message to print; a refused client gets its reply line.
using System.Net;
using System.Net.Sockets;
using SmtpServer;
using SmtpServer.IO;
using SmtpServer.Net;

namespace Bridge.Intake.Adapters;

public sealed class ListenerBindException(string message, Exception inner) : Exception(message, inner);

public sealed class BoundListener : IEndpointListenerFactory, IDisposable
{
    private TcpListener? _listener;

    /// <summary>Set before the server starts: admits or refuses each accepted client.</summary>
    public SessionGate? Gate { get; set; }

    public IPEndPoint? LocalEndpoint => _listener?.LocalEndpoint as IPEndPoint;

    public void Bind(IPAddress address, int port)
    {
        var listener = new TcpListener(address, port);
        try
        {
            listener.Start(512);
        }
        catch (SocketException ex)
        {
            listener.Dispose();
            var why = ex.SocketErrorCode switch
            {
                SocketError.AccessDenied =>
                    $"permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE; run as root or set Bridge:Listen:Port (e.g. --Bridge:Listen:Port=2627)",
                SocketError.AddressAlreadyInUse =>
                    "the port is already in use by another program; stop it or set Bridge:Listen:Port",
                SocketError.AddressNotAvailable =>
                    "this host has no such address; set Bridge:Listen:Address",
                _ => $"{ex.Message}; check Bridge:Listen:Address and Bridge:Listen:Port",
            };
            throw new ListenerBindException($"bridge: cannot listen on {address}:{port}: {why}", ex);
        }
        _listener = listener;
    }

    public IEndpointListener CreateListener(IEndpointDefinition endpointDefinition) =>
        new Listener(_listener ?? throw new InvalidOperationException("Bind must be called before the server starts"),
            Gate ?? throw new InvalidOperationException("Gate must be set before the server starts"));

    /// <summary>Stops taking connections (graceful stop); sessions already open go on.</summary>
    public void StopAccepting() => _listener?.Stop();

    public void Dispose()
    {
        _listener?.Dispose();
        _listener = null;
    }

    private sealed class Listener(TcpListener listener, SessionGate gate) : IEndpointListener
    {
        public async Task<ISecurableDuplexPipe> GetPipeAsync(ISessionContext context, CancellationToken cancellationToken)
        {
            while (true)
            {
                if (gate.Draining)
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false); // until the server stops
                }
                TcpClient client;
                try
                {
                    client = await listener.AcceptTcpClientAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (gate.Draining && ex is ObjectDisposedException or SocketException or InvalidOperationException)
                {
                    continue; // the socket was closed for a graceful stop
                }
                var remote = (IPEndPoint)client.Client.RemoteEndPoint!;
                var refusal = gate.Admit(remote.Address);
                if (refusal is not null)
                {
                    await RefuseAsync(client, refusal).ConfigureAwait(false);
                    continue;
                }
                client.NoDelay = true;
                context.Properties[EndpointListener.LocalEndPointKey] = listener.LocalEndpoint;
                context.Properties[EndpointListener.RemoteEndPointKey] = remote;
                return new SessionPipe(client, gate, SessionState.Of(context));
            }
        }

        private static async Task RefuseAsync(TcpClient client, string reply)
        {
            using (client)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    await client.GetStream().WriteAsync(System.Text.Encoding.ASCII.GetBytes(reply + "\r\n"), timeout.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
                {
                    // the client is gone already
                }
            }
        }

        public void Dispose() => listener.Stop();
    }
}
