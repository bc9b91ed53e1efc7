// Job: own the listening socket. It is bound before the host starts, so that a bind failure (port 627 needs
// root or CAP_NET_BIND_SERVICE; port in use) is one clear line naming the setting, not a stack trace; then
// SmtpServer takes connections from it through IEndpointListenerFactory.
// Failure: Bind throws ListenerBindException with the message to print; accept errors end the listener.
using System.Net;
using System.Net.Sockets;
using SmtpServer;
using SmtpServer.IO;
using SmtpServer.Net;

namespace Bridge.Intake;

public sealed class ListenerBindException(string message, Exception inner) : Exception(message, inner);

public sealed class BoundListener : IEndpointListenerFactory, IDisposable
{
    private TcpListener? _listener;

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
        new Listener(_listener ?? throw new InvalidOperationException("Bind must be called before the server starts"));

    public void Dispose()
    {
        _listener?.Dispose();
        _listener = null;
    }

    private sealed class Listener(TcpListener listener) : IEndpointListener
    {
        public async Task<ISecurableDuplexPipe> GetPipeAsync(ISessionContext context, CancellationToken cancellationToken)
        {
            var client = await listener.AcceptTcpClientAsync(cancellationToken).ConfigureAwait(false);
            client.NoDelay = true;
            context.Properties[EndpointListener.LocalEndPointKey] = listener.LocalEndpoint;
            context.Properties[EndpointListener.RemoteEndPointKey] = client.Client.RemoteEndPoint!;
            return new SessionPipe(client);
        }

        public void Dispose() => listener.Stop();
    }
}
