// Job: one validated, immutable view of the configuration and what is derived from it (routing table,
// spool settings). Every transaction uses the snapshot current when it starts.
// Failure: Load returns the list of problems (each naming its key) instead of a snapshot.
using Bridge.Delivery.Spool;
using Bridge.Native;
using Bridge.Routing;
using Microsoft.Extensions.Configuration;

namespace Bridge.Hosting;

public sealed record SettingsSnapshot(BridgeOptions Options, RoutingTable Routing, SpoolSettings Spool)
{
    public static (SettingsSnapshot? Snapshot, IReadOnlyList<string> Errors) Load(IConfiguration configuration, IPasswdDatabase passwd)
    {
        var options = new BridgeOptions();
        try
        {
            configuration.GetSection(BridgeOptions.Section).Bind(options, o => o.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException ex)
        {
            return (null, [ex.InnerException is null ? ex.Message : $"{ex.Message} {ex.InnerException.Message}"]);
        }
        var result = new BridgeOptionsValidator().Validate(null, options);
        if (result.Failed)
        {
            return (null, result.Failures.ToList());
        }
        var routing = new RoutingTable(
            options.LocalDomains,
            options.Users.Select(u => ((IReadOnlyList<string>)u.ShortNames, u.Mode)),
            options.RecipientDelimiter,
            options.UseSystemAccounts ? passwd : null);
        var spool = new SpoolSettings(options.Spool.Directory, options.Spool.MaxMailboxBytes, options.Spool.LockTimeout,
            options.Spool.DotlockStaleAfter, Libc.GetGroupId(options.Spool.MailGroup));
        return (new SettingsSnapshot(options, routing, spool), []);
    }
}
