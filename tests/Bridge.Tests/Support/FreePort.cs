// Job: a loopback TCP port nobody listens on right now.
// Failure: none (the OS picks it).
using System.Net;
using System.Net.Sockets;

namespace Bridge.Tests.Support;

public static class FreePort
{
    public static int Next()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
