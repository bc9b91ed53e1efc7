// Job: follow one message of a broken rule through the logs, for the report (a CI log keeps only its output, not the
// evidence folder): the front's lines for it (found by its Message-Id, then by the front's queue id: every try and
// its answer), and Bridge's lines for the ids the front's answers name (Bridge's queue id is in its 250, and its log
// lines begin with it).
// Failure: none; a message the logs do not name gives the lines it could find (perhaps none).
using System.Text.RegularExpressions;

namespace Bridge.Soak;

internal static partial class Trace
{
    // "postfix/cleanup[123]: 4Fk2y...: message-id=<soak-1-c0-5@soak.test>"
    [GeneratedRegex(@": ([0-9A-Za-z]+): message-id=<([^>]+)>")]
    private static partial Regex FrontMessageId();

    // Bridge's queue id in its answer to the front, e.g. "(250 2.0.0 <...> Ok: queued as 1A2B3C4D5E6F)"
    [GeneratedRegex(@"queued as ([0-9A-Za-z]+)|\b([0-9A-F]{12,})\b")]
    private static partial Regex BridgeId();

    /// <summary>At most <paramref name="limit"/> lines: the front's for <paramref name="id"/>, then Bridge's for each id
    /// Bridge gave the front, each prefixed with where it came from.</summary>
    public static IReadOnlyList<string> Of(string id, IReadOnlyList<(string Name, string[] Lines)> fronts, IReadOnlyList<string> bridge, int limit = 24)
    {
        var trace = new List<string>();
        var bridgeIds = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, lines) in fronts)
        {
            var queueIds = lines.Select(l => FrontMessageId().Match(l)).Where(m => m.Success && m.Groups[2].Value.StartsWith(id + "@", StringComparison.Ordinal))
                .Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
            foreach (var line in lines.Where(l => queueIds.Any(q => l.Contains(q + ":", StringComparison.Ordinal))))
            {
                trace.Add($"{name}: {line}");
                if (line.Contains("relay=", StringComparison.Ordinal))
                {
                    foreach (Match m in BridgeId().Matches(line[line.IndexOf("relay=", StringComparison.Ordinal)..]))
                    {
                        bridgeIds.Add(m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value);
                    }
                }
            }
        }
        var named = new Regex($@"(?<![\w-]){Regex.Escape(id)}(?![\w-])"); // soak-1-c0-5, not soak-1-c0-50
        trace.AddRange(bridge.Where(l => named.IsMatch(l) || bridgeIds.Any(b => l.Contains(b, StringComparison.Ordinal)))
            .Select(l => $"bridge: {l}"));
        return trace.Count <= limit ? trace : [.. trace.Take(limit - 1), $"... {trace.Count - limit + 1} more lines in the evidence folder"];
    }
}
