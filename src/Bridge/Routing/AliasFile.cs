// Job: read aliases(5) files as Postfix and Sendmail do: "name: target, target", lines that begin with white space
// continue the previous entry, "#" comments, quoted targets, ":include:/path" (a file of more targets, one or more
// per line), targets that are local names, addresses, "|commands" or "/files". Names are case-insensitive; a later
// entry for the same name is a problem (the first one counts).
// Failure: never throws: a file that cannot be read, a line without "name:", an include too deep are Problems with
// file and line; what could be read is used.
using System.Text;

namespace Bridge.Routing;

public enum AliasTargetKind
{
    /// <summary>A local name (a user's short name, or another alias).</summary>
    Name,

    /// <summary>local@domain: local when the domain is one of Bridge:LocalDomains, else a remote address.</summary>
    Address,

    /// <summary>"|command": Bridge runs no programs.</summary>
    Command,

    /// <summary>"/file": Bridge appends only to mailboxes in the spool.</summary>
    File,
}

/// <param name="Source">"file:line" where the target was written (the include file's, for an included one).</param>
public sealed record AliasTarget(AliasTargetKind Kind, string Value, string Source);

/// <param name="Source">"file:line" of the entry's first line.</param>
public sealed record AliasEntry(string Name, IReadOnlyList<AliasTarget> Targets, string Source);

public sealed record AliasFileContent(IReadOnlyDictionary<string, AliasEntry> Entries, IReadOnlyList<string> Problems, IReadOnlyList<string> FilesRead);

public static class AliasFile
{
    private const int MaxIncludeDepth = 5;

    public static AliasFileContent Read(IEnumerable<string> paths)
    {
        var entries = new Dictionary<string, AliasEntry>(StringComparer.Ordinal);
        var problems = new List<string>();
        var files = new List<string>();
        foreach (var path in paths)
        {
            files.Add(path);
            if (!TryReadLines(path, out var lines, out var error))
            {
                problems.Add($"{path}: cannot be read: {error}");
                continue;
            }
            foreach (var (text, line) in LogicalLines(lines))
            {
                var source = $"{path}:{line}";
                var colon = text.IndexOf(':', StringComparison.Ordinal);
                var name = colon > 0 ? Unquote(text[..colon].Trim()).ToLowerInvariant() : "";
                if (name.Length == 0 || name.Any(char.IsWhiteSpace))
                {
                    problems.Add($"{source}: not an alias (\"name: target, ...\"): {Shorten(text)}");
                    continue;
                }
                var targets = new List<AliasTarget>();
                foreach (var value in SplitTargets(text[(colon + 1)..]))
                {
                    AddTarget(value, source, targets, problems, files, 0);
                }
                if (targets.Count == 0)
                {
                    problems.Add($"{source}: alias {name} has no target");
                }
                else if (!entries.TryAdd(name, new AliasEntry(name, targets, source)))
                {
                    problems.Add($"{source}: alias {name} is defined again (the first definition, {entries[name].Source}, counts)");
                }
            }
        }
        return new AliasFileContent(entries, problems, files);
    }

    private static void AddTarget(string value, string source, List<AliasTarget> targets, List<string> problems, List<string> files, int depth)
    {
        if (value.StartsWith(":include:", StringComparison.OrdinalIgnoreCase))
        {
            var path = value[":include:".Length..].Trim();
            if (depth >= MaxIncludeDepth)
            {
                problems.Add($"{source}: :include:{path} is nested more than {MaxIncludeDepth} deep; not read");
                return;
            }
            files.Add(path);
            if (!TryReadLines(path, out var lines, out var error))
            {
                problems.Add($"{source}: :include:{path} cannot be read: {error}");
                return;
            }
            for (var i = 0; i < lines.Length; i++)
            {
                var line = lines[i].Trim();
                if (line.Length == 0 || line.StartsWith('#'))
                {
                    continue;
                }
                foreach (var included in SplitTargets(line))
                {
                    AddTarget(included, $"{path}:{i + 1}", targets, problems, files, depth + 1);
                }
            }
            return;
        }
        var kind = value.StartsWith('|') ? AliasTargetKind.Command
            : value.StartsWith('/') ? AliasTargetKind.File
            : value.Contains('@', StringComparison.Ordinal) ? AliasTargetKind.Address
            : AliasTargetKind.Name;
        targets.Add(new AliasTarget(kind, kind is AliasTargetKind.Name or AliasTargetKind.Address ? value.ToLowerInvariant() : value, source));
    }

    /// <summary>Entries with their continuation lines joined, comments and blank lines dropped, and the line each began on.</summary>
    private static IEnumerable<(string Text, int Line)> LogicalLines(string[] lines)
    {
        StringBuilder? current = null;
        var start = 0;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.TrimStart().StartsWith('#'))
            {
                continue;
            }
            if (line.Length > 0 && char.IsWhiteSpace(line[0]) && current is not null)
            {
                current.Append(' ').Append(line.Trim());
                continue;
            }
            if (current is not null)
            {
                yield return (current.ToString(), start);
                current = null;
            }
            if (line.Trim().Length > 0)
            {
                current = new StringBuilder(line.Trim());
                start = i + 1;
            }
        }
        if (current is not null)
        {
            yield return (current.ToString(), start);
        }
    }

    /// <summary>Comma-separated targets; a comma inside double quotes belongs to the target.</summary>
    private static IEnumerable<string> SplitTargets(string text)
    {
        var part = new StringBuilder();
        var quoted = false;
        foreach (var c in text)
        {
            if (c == '"')
            {
                quoted = !quoted;
                part.Append(c);
            }
            else if (c == ',' && !quoted)
            {
                if (Unquote(part.ToString().Trim()) is { Length: > 0 } value)
                {
                    yield return value;
                }
                part.Clear();
            }
            else
            {
                part.Append(c);
            }
        }
        if (Unquote(part.ToString().Trim()) is { Length: > 0 } last)
        {
            yield return last;
        }
    }

    private static string Unquote(string value) =>
        value.Length >= 2 && value[0] == '"' && value[^1] == '"' ? value[1..^1] : value;

    private static string Shorten(string text) => text.Length <= 60 ? text : text[..60] + "...";

    private static bool TryReadLines(string path, out string[] lines, out string error)
    {
        try
        {
            lines = System.IO.File.ReadAllLines(path);
            error = "";
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            lines = [];
            error = ex.Message;
            return false;
        }
    }
}
