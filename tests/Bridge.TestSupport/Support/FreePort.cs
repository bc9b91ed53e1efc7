// Job: a loopback TCP port for a test server. Ports are taken below the kernel's ephemeral range, which
// outgoing connections (hundreds in the load test) draw from, and none is handed out twice in one run.
// Failure: none found after many probes fails the test.
using System.Net;
using System.Net.Sockets;

namespace Bridge.Tests.Support;

public static class FreePort
{
    private static readonly HashSet<int> HandedOut = [];
    private static readonly Random Pick = new();

    /// <summary>A free loopback port below 1024 (binding it needs root or CAP_NET_BIND_SERVICE).</summary>
    public static int Privileged()
    {
        for (var port = 700; port < 1000; port++)
        {
            try
            {
                using var probe = new TcpListener(IPAddress.Loopback, port);
                probe.Start();
                return port;
            }
            catch (SocketException)
            {
            }
        }
        throw new InvalidOperationException("no free port below 1024");
    }

    public static int Next()
    {
        var (low, high) = Range();
        lock (HandedOut)
        {
            for (var probe = 0; probe < 1000; probe++)
            {
                var port = Pick.Next(low, high);
                if (HandedOut.Contains(port))
                {
                    continue;
                }
                try
                {
                    using var listener = new TcpListener(IPAddress.Loopback, port);
                    listener.Start();
                }
                catch (SocketException)
                {
                    continue;
                }
                HandedOut.Add(port);
                return port;
            }
        }
        throw new InvalidOperationException("no free loopback port below the ephemeral range");
    }

    /// <summary>[10000, start of the ephemeral range), or a fixed safe window if it cannot be read.</summary>
    private static (int Low, int High) Range()
    {
        try
        {
            var first = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries)[0];
            var ephemeral = int.Parse(first, System.Globalization.CultureInfo.InvariantCulture);
            if (ephemeral > 12000)
            {
                return (10000, ephemeral);
            }
        }
        catch (IOException)
        {
        }
        return (10000, 30000);
    }
}
