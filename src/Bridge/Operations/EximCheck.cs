// Job: the Exim part of `mailbridge check`, read with `exim -bP` (the binary on PATH, or `check --exim BINARY`; its own
// configuration, or `check --exim-config FILE`): a manualroute router sends mail to Bridge's listener
// (route_list ... 127.0.0.1::<Bridge:Listen:Port>), it comes first (a router before it may deliver mail for Bridge's
// domains itself), its transport sends one recipient per transaction (max_rcpt = 1), and message_size_limit is not
// above Bridge:MaxMessageBytes.
// Failure: none thrown; no Exim -> no findings; exim -bP failing -> one WARN with its message.
using System.Globalization;
using System.Text.RegularExpressions;
using Bridge.Configuration;

namespace Bridge.Operations;

internal static partial class EximCheck
{
    [GeneratedRegex(@"^(\S+) = ?(.*)$", RegexOptions.Multiline)]
    private static partial Regex Option();

    public static async Task<IReadOnlyList<Finding>> RunAsync(BridgeOptions options, string? binary, string? configFile, CancellationToken cancellationToken)
    {
        var exim = binary ?? ConfigTool.Find("exim4") ?? ConfigTool.Find("exim");
        if (exim is null)
        {
            return [];
        }
        string[] config = configFile is null ? [] : ["-C", configFile];
        var subject = $"exim {configFile ?? exim}";
        var (ok, routerList) = await ConfigTool.RunAsync(exim, [.. config, "-bP", "router_list"], cancellationToken).ConfigureAwait(false);
        if (!ok)
        {
            return [new Finding(Level.Warn, subject, $"exim -bP failed: {routerList.Trim()}", "run exim -bP yourself to see why")];
        }
        var routers = routerList.Split([':', '\n', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var listen = $"127.0.0.1::{options.Listen.Port}";
        var findings = new List<Finding>();
        string? transport = null;
        for (var i = 0; i < routers.Length && transport is null; i++)
        {
            var router = await OptionsOfAsync(exim, config, "router", routers[i], cancellationToken).ConfigureAwait(false);
            var route = router.GetValueOrDefault("route_list", "") + " " + router.GetValueOrDefault("route_data", "");
            if (router.GetValueOrDefault("driver") != "manualroute" ||
                !(route.Contains(listen, StringComparison.Ordinal) || route.Contains($"localhost::{options.Listen.Port}", StringComparison.Ordinal)))
            {
                continue;
            }
            transport = router.GetValueOrDefault("transport", "");
            findings.Add(i == 0
                ? new Finding(Level.Ok, subject, $"router {routers[i]} sends mail to Bridge ({route.Trim()}) and comes first")
                : new Finding(Level.Warn, subject, $"router {routers[i]} sends mail to Bridge but comes after {string.Join(", ", routers[..i])}, which may take mail for {string.Join(", ", options.LocalDomains)} first",
                    $"put router {routers[i]} first in the routers section of {configFile ?? "Exim's configuration"}"));
        }
        if (transport is null)
        {
            findings.Add(new Finding(Level.Fail, subject, $"no manualroute router sends mail to Bridge's listener {listen}",
                $"add /usr/share/doc/bridge/examples/exim/router-bridge.conf (deploy/exim) first in the routers section, with port {options.Listen.Port}"));
        }
        else if (transport.Length > 0)
        {
            var smtp = await OptionsOfAsync(exim, config, "transport", transport, cancellationToken).ConfigureAwait(false);
            var maxRcpt = smtp.GetValueOrDefault("max_rcpt", "");
            findings.Add(maxRcpt == "1"
                ? new Finding(Level.Ok, subject, $"transport {transport}: max_rcpt = 1, one recipient per transaction")
                : new Finding(Level.Warn, subject, $"transport {transport}: max_rcpt = {maxRcpt}: a deferral of one recipient makes Exim send the message again to the others too (duplicates)",
                    $"max_rcpt = 1 in transport {transport}"));
        }
        var (sized, sizeText) = await ConfigTool.RunAsync(exim, [.. config, "-bP", "message_size_limit"], cancellationToken).ConfigureAwait(false);
        var size = sized ? ParseSize(sizeText.Split('=', 2).ElementAtOrDefault(1)?.Trim() ?? "") : null;
        if (size is { } limit)
        {
            findings.Add(limit == 0 || limit > options.MaxMessageBytes
                ? new Finding(Level.Fail, subject, $"message_size_limit = {limit} is above Bridge:MaxMessageBytes = {options.MaxMessageBytes}: Exim accepts messages Bridge then refuses (552 5.3.4), and they bounce",
                    $"message_size_limit = {options.MaxMessageBytes} in the main section (or raise Bridge:MaxMessageBytes)")
                : new Finding(Level.Ok, subject, $"message_size_limit = {limit} is within Bridge:MaxMessageBytes"));
        }
        return findings;
    }

    private static async Task<Dictionary<string, string>> OptionsOfAsync(string exim, string[] config, string kind, string name, CancellationToken cancellationToken)
    {
        var (ok, output) = await ConfigTool.RunAsync(exim, [.. config, "-bP", kind, name], cancellationToken).ConfigureAwait(false);
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        if (ok)
        {
            foreach (Match match in Option().Matches(output))
            {
                options.TryAdd(match.Groups[1].Value, match.Groups[2].Value.Trim());
            }
        }
        return options;
    }

    /// <summary>Exim's sizes: digits with an optional K, M or G (1024-based).</summary>
    internal static long? ParseSize(string value)
    {
        if (value.Length == 0)
        {
            return null;
        }
        var multiplier = char.ToUpperInvariant(value[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 1L };
        var digits = multiplier == 1 ? value : value[..^1];
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var number) ? number * multiplier : null;
    }
}
