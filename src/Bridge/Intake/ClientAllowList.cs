// Job: decide whether a client address may talk to Bridge (Bridge:AllowedClients; empty = loopback only).
// IPv4-mapped IPv6 addresses are compared as IPv4.
// Failure: none; a refused client is answered 554 5.7.1 by the listener.
using System.Net;

namespace Bridge.Intake;

public sealed class ClientAllowList(IReadOnlyList<string> cidrs)
{
    private readonly IPNetwork[] _networks = cidrs.Count == 0
        ? [IPNetwork.Parse("127.0.0.0/8"), IPNetwork.Parse("::1/128")]
        : [.. cidrs.Select(IPNetwork.Parse)];

    public bool Allows(IPAddress address)
    {
        var plain = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        return _networks.Any(n => n.Contains(plain));
    }
}
