// Job: where and how to reach a relay (the mail store, or the bounce relay), as one comparable value (a change means new connections).
// Failure: none; values only.
using Bridge.Delivery.Smtp;

namespace Bridge.Delivery.Smtp;

public enum StoreProtocol
{
    Smtp,
    Lmtp,
}

public enum StoreTls
{
    None,
    StartTls,
    Implicit,
}

public sealed record SmtpEndpoint(
    string Host, int Port, StoreProtocol Protocol, StoreTls Tls, string? TrustedCertificate,
    string? Username, string? Password, string HeloName, int MaxConnections, bool Chunking = true)
{
    public override string ToString() => $"{Protocol.ToString().ToLowerInvariant()}:[{Host}]:{Port}";
}
