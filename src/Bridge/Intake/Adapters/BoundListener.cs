// Job: own the listening sockets: the SMTP port (Bridge:Listen) and, when configured, LMTP on a Unix socket
// (Bridge:Lmtp:Socket, created with its mode and group by Native/UnixSocketFile, so that nobody who can write its
// directory can steer that to another file; a stale socket is replaced, one something listens on or anything else at
// the path is refused) and on a TCP port (Bridge:Lmtp:Port). They are bound before the host starts, so that a bind failure (port
// 627 needs root or CAP_NET_BIND_SERVICE; port in use; a path that is not a socket) is one clear line naming the
// setting; then SmtpServer takes connections from them through IEndpointListenerFactory, one endpoint per socket.
// Corrects: the library binds only when it starts, inside the host, where a bind failure is an unhandled exception;
// it knows TCP only and accepts every client it is offered. Each accepted client passes the SessionGate first (a TCP
// client also Bridge:AllowedClients; on the Unix socket the file system decided); an LMTP session is marked so in its
// SessionState (through its SessionWire). StopAccepting closes the sockets (an MTA then sees "connection refused" and queues).
// Failure: Bind* throw ListenerBindException with the message to print; a refused client gets its reply line.
using System.Net;
using System.Net.Sockets;
using Bridge.Native;
using SmtpServer;
using SmtpServer.IO;
using SmtpServer.Net;

namespace Bridge.Intake.Adapters;

public sealed class ListenerBindException(string message, Exception? inner = null) : Exception(message, inner);

public sealed class BoundListener : IEndpointListenerFactory, IDisposable
{
    private readonly List<BoundSocket> _sockets = [];

    /// <summary>Set before the server starts: admits or refuses each accepted client.</summary>
    public SessionGate? Gate { get; set; }

    /// <summary>The SMTP listener's address.</summary>
    public IPEndPoint? LocalEndpoint => _sockets.FirstOrDefault(s => !s.Lmtp)?.Socket.LocalEndPoint as IPEndPoint;

    /// <summary>One endpoint per bound socket, as SmtpServer is given them (a Unix socket gets a stand-in address).</summary>
    public IReadOnlyList<IPEndPoint> Endpoints => [.. _sockets.Select(s => s.Key)];

    /// <summary>What each socket is, for the start-up log line.</summary>
    public IReadOnlyList<string> Descriptions => [.. _sockets.Select(s => s.Description)];

    public void Bind(IPAddress address, int port) => BindTcp(address, port, lmtp: false, "Bridge:Listen:Address", "Bridge:Listen:Port");

    public void BindLmtpTcp(IPAddress address, int port) => BindTcp(address, port, lmtp: true, "Bridge:Lmtp:Address", "Bridge:Lmtp:Port");

    private void BindTcp(IPAddress address, int port, bool lmtp, string addressKey, string portKey)
    {
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(address, port));
            socket.Listen(512);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            var why = ex.SocketErrorCode switch
            {
                SocketError.AccessDenied =>
                    $"permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE; run as root or set {portKey} (e.g. --{portKey}=2627)",
                SocketError.AddressAlreadyInUse =>
                    $"the port is already in use by another program; stop it or set {portKey}",
                SocketError.AddressNotAvailable =>
                    $"this host has no such address; set {addressKey}",
                _ => $"{ex.Message}; check {addressKey} and {portKey}",
            };
            throw new ListenerBindException($"mailbridge: cannot listen{(lmtp ? " for LMTP" : "")} on {address}:{port}: {why}", ex);
        }
        var local = (IPEndPoint)socket.LocalEndPoint!;
        _sockets.Add(new BoundSocket(socket, lmtp, local, $"{(lmtp ? "lmtp" : "smtp")}:{local}"));
    }

    /// <summary>LMTP on a Unix socket at <paramref name="path"/>, given <paramref name="mode"/> and group <paramref name="gid"/>
    /// where no other user can interfere (UnixSocketFile); a socket something listens on is in use.</summary>
    public void BindLmtpSocket(string path, UnixFileMode mode, uint gid)
    {
        const string key = "Bridge:Lmtp:Socket";
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var owned = UnixSocketFile.Bind(socket, path, (uint)mode, gid, 512, out var problem, out _);
        if (owned is null)
        {
            socket.Dispose();
            throw new ListenerBindException($"mailbridge: cannot listen for LMTP on {path}: {problem}; check the directory or set {key}");
        }
        // SmtpServer identifies endpoints by IP address: a Unix socket gets one no client can have (0.0.0.0:index).
        _sockets.Add(new BoundSocket(socket, true, new IPEndPoint(IPAddress.Any, _sockets.Count + 1), $"lmtp:unix:{path}", owned));
    }

    public IEndpointListener CreateListener(IEndpointDefinition endpointDefinition)
    {
        var bound = _sockets.FirstOrDefault(s => s.Key.Equals(endpointDefinition.Endpoint))
            ?? throw new InvalidOperationException($"no socket was bound for {endpointDefinition.Endpoint}");
        return new Listener(bound, Gate ?? throw new InvalidOperationException("Gate must be set before the server starts"));
    }

    /// <summary>Stops taking connections (graceful stop); sessions already open go on.</summary>
    public void StopAccepting()
    {
        foreach (var bound in _sockets)
        {
            bound.Close();
        }
    }

    public void Dispose() => StopAccepting();

    private sealed record BoundSocket(Socket Socket, bool Lmtp, IPEndPoint Key, string Description, OwnedSocketFile? File = null)
    {
        private int _closed;

        public void Close()
        {
            if (Interlocked.Exchange(ref _closed, 1) != 0)
            {
                return;
            }
            Socket.Dispose();
            File?.RemoveIfOurs(); // nobody listens any more: a client gets "no such file", as without Bridge

        }
    }

    private sealed class Listener(BoundSocket bound, SessionGate gate) : IEndpointListener
    {
        public async Task<ISecurableDuplexPipe> GetPipeAsync(ISessionContext context, CancellationToken cancellationToken)
        {
            while (true)
            {
                if (gate.Draining)
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false); // until the server stops
                }
                Socket client;
                try
                {
                    client = await bound.Socket.AcceptAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (gate.Draining && ex is ObjectDisposedException or SocketException or InvalidOperationException)
                {
                    continue; // the socket was closed for a graceful stop
                }
                var remote = client.RemoteEndPoint as IPEndPoint; // null on the Unix socket
                var refusal = gate.Admit(remote?.Address);
                if (refusal is not null)
                {
                    await RefuseAsync(client, refusal).ConfigureAwait(false);
                    continue;
                }
                if (remote is not null)
                {
                    client.NoDelay = true;
                    context.Properties[EndpointListener.RemoteEndPointKey] = remote;
                }
                context.Properties[EndpointListener.LocalEndPointKey] = bound.Key;
                var session = SessionWire.Of(context);
                session.State.Lmtp = bound.Lmtp;
                return new SessionPipe(client, gate, session);
            }
        }

        private static async Task RefuseAsync(Socket client, string reply)
        {
            using (client)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    await client.SendAsync(System.Text.Encoding.ASCII.GetBytes(reply + "\r\n"), SocketFlags.None, timeout.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
                {
                    // the client is gone already
                }
            }
        }

        public void Dispose() => bound.Close();
    }
}
