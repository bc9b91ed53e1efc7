// Job: where and how to reach a relay (the mail store, or the bounce relay), as one comparable value (a change means new connections).
// Failure: none; values only.
using Bridge.Hosting;

namespace Bridge.Delivery.Smtp;

public sealed record SmtpEndpoint(
    string Host, int Port, StoreProtocol Protocol, StoreTls Tls, string? TrustedCertificate,
    string? Username, string? Password, string HeloName, int MaxConnections, bool Chunking = true)
{
    public override string ToString() => $"{Protocol.ToString().ToLowerInvariant()}:[{Host}]:{Port}";

    public static SmtpEndpoint From(BridgeOptions options) => new(
        options.Legacy.Host, options.Legacy.Port, options.Legacy.Protocol, options.Legacy.Tls,
        options.Legacy.TrustedCertificate, options.Legacy.Username, options.Legacy.Password,
        options.ServerName, options.Legacy.MaxConnections, options.Legacy.Chunking);
}
