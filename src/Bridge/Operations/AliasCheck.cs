// Job: the aliases part of `mailbridge check` (Bridge:AliasFiles): what the files say wrong (file and line, never
// their content), and every alias whose mail would be refused at RCPT.
// Failure: none thrown; every problem is a Finding with its fix.
using Bridge.Configuration;

namespace Bridge.Operations;

internal static class AliasCheck
{
    /// <summary>Bridge:AliasFiles: what the files say wrong (file and line), and every alias that would be refused at
    /// RCPT (a member that is no local user, a loop).</summary>
    public static IEnumerable<Finding> Run(SettingsSnapshot snapshot)
    {
        if (snapshot.Routing.Aliases is not { } aliases)
        {
            yield break;
        }
        var subject = $"aliases {string.Join(", ", snapshot.Options.AliasFiles)}";
        foreach (var problem in aliases.Content.Unreadable)
        {
            yield return new Finding(Level.Fail, subject, problem.Described, "make the file a regular file that only its owner can write, readable by Bridge");
        }
        foreach (var problem in aliases.Problems.Except(aliases.Content.Unreadable))
        {
            yield return new Finding(Level.Warn, subject, problem.Described, "deliver such aliases with the MTA's own alias maps, or remove them");
        }
        var domain = snapshot.Options.LocalDomains.FirstOrDefault() ?? "localhost";
        var refused = 0;
        foreach (var name in aliases.Content.Entries.Keys.Order(StringComparer.Ordinal))
        {
            var route = snapshot.Routing.Resolve(name, domain);
            if (!route.IsAccepted && route.Refusal.Enhanced != "5.3.5") // undeliverable targets are listed above already
            {
                refused++;
                yield return new Finding(Level.Warn, subject, $"mail to {name}@{domain} is refused: {route.Refusal}", "fix the alias");
            }
        }
        yield return new Finding(Level.Ok, subject, $"{aliases.Content.Entries.Count} aliases read; {refused} refused at RCPT besides the ones above");
    }
}
