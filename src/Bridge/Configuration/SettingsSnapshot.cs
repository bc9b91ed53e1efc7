// Job: one validated, immutable view of the configuration and what is derived from it (routing table, and the
// narrow settings each delivery agent runs with: spool, store, bounces), built here and nowhere else. Every
// transaction uses the snapshot current when it starts.
// Failure: Load returns the list of problems (each naming its key) instead of a snapshot.
using Bridge.Delivery.Bounces;
using Bridge.Delivery.Smtp;
using Bridge.Delivery.Spool;
using Bridge.Delivery.Store;
using Bridge.Native;
using Bridge.Routing;
using Microsoft.Extensions.Configuration;

namespace Bridge.Configuration;

public sealed record SettingsSnapshot(BridgeOptions Options, RoutingTable Routing, SpoolSettings Spool, StoreSettings Store, BounceSettings Bounces)
{
    /// <param name="previous">The snapshot in force (a reload): its alias table is kept when the alias settings are the
    /// same, so a reload never throws away the last good reading of the alias files (nor waits for a new one).</param>
    public static (SettingsSnapshot? Snapshot, IReadOnlyList<string> Errors) Load(IConfiguration configuration, IPasswdDatabase passwd,
        SettingsSnapshot? previous = null)
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
            options.UseSystemAccounts ? passwd : null,
            previous?.Routing.Aliases is { } kept && SameAliases(previous.Options, options)
                ? kept
                : new AliasTable(options.AliasFiles, options.LocalDomains, new AliasLimits(options.Aliases.MaxFileBytes, options.Aliases.MaxMembers)));
        var spool = new SpoolSettings(options.Spool.Directory, options.Spool.MaxMailboxBytes, options.Spool.LockTimeout,
            options.Spool.DotlockStaleAfter, Libc.GetGroupId(options.Spool.MailGroup), options.Spool.QuotaExceeded == QuotaPolicy.Defer, options.Spool.Format);
        var legacy = options.Legacy;
        var endpoint = new SmtpEndpoint(legacy.Host, legacy.Port, legacy.Protocol, legacy.Tls, legacy.TrustedCertificate,
            legacy.Username, legacy.Password, options.ServerName, legacy.MaxConnections, legacy.Chunking);
        var r = options.Retry;
        var retry = new StoreRetry(r.MaxAttempts, r.BaseDelay, r.MaxDelay, r.AttemptTimeout, r.Budget, r.BreakAfterFailures, r.BreakDuration);
        _ = BounceSender.TryParseRelay(options.Bounces.Relay, out var relayHost, out var relayPort); // validated above
        var bounces = new BounceSettings(relayHost, relayPort, options.ServerName);
        return (new SettingsSnapshot(options, routing, spool, new StoreSettings(endpoint, retry), bounces), []);
    }

    private static bool SameAliases(BridgeOptions a, BridgeOptions b) =>
        a.AliasFiles.SequenceEqual(b.AliasFiles, StringComparer.Ordinal) && a.LocalDomains.SequenceEqual(b.LocalDomains, StringComparer.Ordinal) &&
        a.Aliases.MaxFileBytes == b.Aliases.MaxFileBytes && a.Aliases.MaxMembers == b.Aliases.MaxMembers;
}
