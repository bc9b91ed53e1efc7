// Job: where and how to reach the mail store, as one comparable value (a change means new connections).
// Failure: none; values only.
using Bridge.Hosting;

namespace Bridge.Delivery.Store;

public sealed record StoreEndpoint(
    string Host, int Port, StoreProtocol Protocol, StoreTls Tls, string? TrustedCertificate,
    string? Username, string? Password, string HeloName, int MaxConnections)
{
    public override string ToString() => $"{Protocol.ToString().ToLowerInvariant()}:[{Host}]:{Port}";

    public static StoreEndpoint From(BridgeOptions options) => new(
        options.Legacy.Host, options.Legacy.Port, options.Legacy.Protocol, options.Legacy.Tls,
        options.Legacy.TrustedCertificate, options.Legacy.Username, options.Legacy.Password,
        options.ServerName, options.Legacy.MaxConnections);
}
