// Job: what bounces are sent with: the relay that takes them (Bridge:Bounces:Relay, parsed once) and the name
// Bridge reports as (Bridge:ServerName); built from the configuration in Hosting/SettingsSnapshot.
// Failure: none; values only (the relay is validated with the configuration).
using Bridge.Delivery.Smtp;

namespace Bridge.Delivery.Bounces;

public sealed record BounceSettings(string RelayHost, int RelayPort, string ServerName)
{
    public SmtpEndpoint Relay => new(RelayHost, RelayPort, StoreProtocol.Smtp, StoreTls.None, null, null, null, ServerName, 1);
}
