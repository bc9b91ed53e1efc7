// Job: the Postfix part of `mailbridge check`: read the MTA's own configuration with postconf(1) (the main.cf of
// $MAIL_CONFIG, else /etc/postfix, as postconf itself does) and report, naming the setting to change, whether mail
// for Bridge:LocalDomains reaches Bridge's listener (relayhost, or a transport_maps entry, checked with postmap -q),
// whether Postfix delivers a local domain itself (mydestination, virtual_mailbox_domains: Bridge never sees that
// mail), whether it sends Bridge one recipient per transaction, and whether it accepts messages Bridge refuses as
// too large.
// Failure: none thrown; postconf missing -> no findings (the caller says the MTA was not checked), postconf failing
// -> one WARN with its message.
using System.Globalization;
using Bridge.Configuration;

namespace Bridge.Operations;

internal static class PostfixCheck
{
    public static async Task<IReadOnlyList<Finding>> RunAsync(BridgeOptions options, CancellationToken cancellationToken)
    {
        var postconf = ConfigTool.Find("postconf");
        if (postconf is null)
        {
            return [];
        }
        var directory = ConfigDirectory();
        var mainCf = Path.Combine(directory, "main.cf");
        var subject = $"postfix {mainCf}";
        if (!File.Exists(mainCf))
        {
            return [new Finding(Level.Ok, subject, "does not exist: Postfix is installed but not configured here, not checked (MAIL_CONFIG names another configuration directory)")];
        }
        string[] names = ["relayhost", "mydestination", "virtual_mailbox_domains", "transport_maps", "message_size_limit",
            "default_destination_recipient_limit", "smtp_destination_recipient_limit", "mailbox_transport", "virtual_transport",
            "queue_directory", "mail_owner"];
        var (ok, output) = await ConfigTool.RunAsync(postconf, ["-c", directory, "-x", .. names], cancellationToken).ConfigureAwait(false);
        if (!ok)
        {
            return [new Finding(Level.Warn, subject, $"postconf failed: {output.Trim()}", "run postconf yourself to see why")];
        }
        // "name = value" lines; a parameter postconf does not know (smtp_* without a master.cf) is simply absent.
        var setting = output.Split('\n').Select(l => l.Split(" = ", 2)).Where(p => p.Length == 2 || p[0].EndsWith(" =", StringComparison.Ordinal))
            .ToDictionary(p => p[0].TrimEnd(' ', '='), p => p.Length == 2 ? p[1].Trim() : "", StringComparer.Ordinal);
        foreach (var name in names)
        {
            setting.TryAdd(name, "");
        }
        if (setting["smtp_destination_recipient_limit"].Length == 0)
        {
            setting["smtp_destination_recipient_limit"] = setting["default_destination_recipient_limit"];
        }
        var findings = new List<Finding>();
        var listen = $"[{options.Listen.Address}]:{options.Listen.Port}";
        var postmap = ConfigTool.Find("postmap");
        var transports = new List<string>();
        var ownDomains = Words(setting["mydestination"]).Concat(Words(setting["virtual_mailbox_domains"])).Select(d => d.TrimEnd('.').ToLowerInvariant()).ToHashSet();

        var lmtpRoutes = 0;
        foreach (var domain in options.LocalDomains.Select(d => d.Trim().TrimEnd('.').ToLowerInvariant()))
        {
            var transport = postmap is null ? null : await LookupTransportAsync(postmap, directory, setting["transport_maps"], domain, cancellationToken).ConfigureAwait(false);
            if (options.Lmtp.Socket.Length > 0)
            {
                var (lmtpRoute, lmtpVia) = transport is not null ? (transport, "transport_maps")
                    : Words(setting["mydestination"]).Any(d => string.Equals(d.TrimEnd('.'), domain, StringComparison.OrdinalIgnoreCase)) ? (setting["mailbox_transport"], "mailbox_transport")
                    : Words(setting["virtual_mailbox_domains"]).Any(d => string.Equals(d.TrimEnd('.'), domain, StringComparison.OrdinalIgnoreCase)) ? (setting["virtual_transport"], "virtual_transport")
                    : ("", "");
                if (ReachesSocket(lmtpRoute, setting["queue_directory"], options.Lmtp.Socket))
                {
                    findings.Add(new Finding(Level.Ok, subject, $"mail for {domain} goes to Bridge over LMTP ({lmtpVia} = {lmtpRoute})"));
                    lmtpRoutes++;
                    continue;
                }
            }
            if (ownDomains.Contains(domain))
            {
                findings.Add(new Finding(Level.Fail, subject, $"{domain} is in mydestination or virtual_mailbox_domains: Postfix delivers its mail itself and Bridge never sees it",
                    $"remove {domain} from mydestination / virtual_mailbox_domains in {mainCf}, then postfix reload"));
                continue;
            }
            var (route, via) = transport is not null ? (transport, "transport_maps") : (setting["relayhost"], "relayhost");
            if (PointsAt(route, options.Listen.Address, options.Listen.Port))
            {
                findings.Add(new Finding(Level.Ok, subject, $"mail for {domain} goes to Bridge ({via} = {route})"));
                var colon = route.IndexOf(':', StringComparison.Ordinal);
                transports.Add(transport is not null && colon > 0 && !route.StartsWith('[') ? route[..colon] : "smtp");
            }
            else
            {
                findings.Add(new Finding(Level.Fail, subject,
                    $"mail for {domain} does not reach Bridge's listener {listen}: {via} is '{route}'",
                    $"postconf -c {directory} -e 'relayhost = {listen}' (or a transport_maps entry '{domain} smtp:{listen}'), then postfix reload"));
            }
        }

        foreach (var name in transports.Count == 0 && lmtpRoutes > 0 ? [] : transports.Count == 0 ? ["smtp"] : transports.Distinct().Order(StringComparer.Ordinal).ToArray())
        {
            // The transport's own limit, else default_destination_recipient_limit (postconf -x expands the default).
            var parameter = $"{name}_destination_recipient_limit";
            var limit = name == "smtp" ? setting["smtp_destination_recipient_limit"] : await RecipientLimitAsync(postconf, directory, parameter, setting, cancellationToken).ConfigureAwait(false);
            findings.Add(limit == "1"
                ? new Finding(Level.Ok, subject, $"{parameter} = 1: one recipient per transaction")
                : new Finding(Level.Warn, subject, $"{parameter} = {limit}: a deferral of one recipient makes Postfix send the message again to the others too (duplicates)",
                    $"postconf -c {directory} -e '{parameter} = 1', then postfix reload"));
        }

        if (long.TryParse(setting["message_size_limit"], NumberStyles.None, CultureInfo.InvariantCulture, out var size) && (size == 0 || size > options.MaxMessageBytes))
        {
            findings.Add(new Finding(Level.Fail, subject,
                $"message_size_limit = {size} is above Bridge:MaxMessageBytes = {options.MaxMessageBytes}: Postfix accepts messages Bridge then refuses (552 5.3.4), and they bounce",
                $"postconf -c {directory} -e 'message_size_limit = {options.MaxMessageBytes}' (or raise Bridge:MaxMessageBytes)"));
        }
        else
        {
            findings.Add(new Finding(Level.Ok, subject, $"message_size_limit = {setting["message_size_limit"]} is within Bridge:MaxMessageBytes"));
        }
        return findings;
    }

    /// <summary>A transport value "lmtp:unix:PATH" (PATH relative to queue_directory, as lmtp(8) resolves it) names
    /// Bridge's LMTP socket.</summary>
    internal static bool ReachesSocket(string route, string queueDirectory, string socket)
    {
        const string prefix = "lmtp:unix:";
        var value = route.Trim();
        if (!value.StartsWith(prefix, StringComparison.Ordinal))
        {
            return false;
        }
        var path = value[prefix.Length..];
        var full = Path.IsPathRooted(path) ? path : Path.Combine(queueDirectory, path);
        return string.Equals(Path.GetFullPath(full), Path.GetFullPath(socket), StringComparison.Ordinal);
    }

    /// <summary>The user Postfix's delivery agents run as (mail_owner), for the LMTP socket's permissions.</summary>
    public static async Task<string?> MailOwnerAsync(CancellationToken cancellationToken)
    {
        var postconf = ConfigTool.Find("postconf");
        if (postconf is null)
        {
            return null;
        }
        var (ok, output) = await ConfigTool.RunAsync(postconf, ["-c", ConfigDirectory(), "-hx", "mail_owner"], cancellationToken).ConfigureAwait(false);
        return ok && output.Trim().Length > 0 ? output.Trim() : null;
    }

    /// <summary>Postfix's configuration directory as postconf finds it: $MAIL_CONFIG, else /etc/postfix.</summary>
    private static string ConfigDirectory() =>
        Environment.GetEnvironmentVariable("MAIL_CONFIG") is { Length: > 0 } configured ? configured : "/etc/postfix";

    /// <summary>The nexthop of a relayhost or transport value ("[127.0.0.1]:627", "smtp:[127.0.0.1]:627") is Bridge's listener.</summary>
    internal static bool PointsAt(string route, string address, int port)
    {
        var value = route.Trim();
        var colon = value.IndexOf(':', StringComparison.Ordinal);
        if (colon > 0 && !value.StartsWith('[') && value[..colon].All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
        {
            value = value[(colon + 1)..].Trim();
        }
        if (!value.StartsWith('['))
        {
            return false; // without brackets Postfix looks up MX records: not a direct route to the listener
        }
        var close = value.IndexOf(']', StringComparison.Ordinal);
        if (close < 0)
        {
            return false;
        }
        var host = value[1..close];
        var rest = value[(close + 1)..];
        var routePort = rest.StartsWith(':') && int.TryParse(rest[1..], NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : 25;
        var local = host is "localhost" || host == address || (address is "0.0.0.0" && host is "127.0.0.1");
        return local && routePort == port;
    }

    private static async Task<string> RecipientLimitAsync(string postconf, string directory, string parameter, Dictionary<string, string> setting,
        CancellationToken cancellationToken)
    {
        var (ok, output) = await ConfigTool.RunAsync(postconf, ["-c", directory, "-hx", parameter], cancellationToken).ConfigureAwait(false);
        return ok && output.Trim().Length > 0 ? output.Trim() : setting["default_destination_recipient_limit"];
    }

    private static async Task<string?> LookupTransportAsync(string postmap, string directory, string maps, string domain, CancellationToken cancellationToken)
    {
        foreach (var map in Words(maps))
        {
            var (ok, output) = await ConfigTool.RunAsync(postmap, ["-c", directory, "-q", domain, map], cancellationToken).ConfigureAwait(false);
            if (ok && output.Trim().Length > 0)
            {
                return output.Trim();
            }
        }
        return null;
    }

    private static string[] Words(string value) =>
        value.Split([' ', ',', '\t'], StringSplitOptions.RemoveEmptyEntries);
}
