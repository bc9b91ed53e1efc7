// Job: the aliases of Bridge:AliasFiles, current: read at start and again whenever one of the files (or a file they
// include) changes, looked at no more than once a second (no newaliases step); and the expansion of a name: to the
// local names it ends at, in order, each once, through aliases of aliases, where a name that names itself is its user
// (Postfix's "root: root, backup"), a cycle or more than MaxDepth levels is a loop, and a command, file or remote
// target makes the whole alias undeliverable by Bridge (refused at RCPT, never a silent loss).
// Failure: never throws; what the files say wrong is reported (the callback, e.g. the log) at each (re)load, with
// file and line, and listed in Problems for `bridge check`.
namespace Bridge.Routing;

/// <param name="Names">The local names the alias ends at (not yet checked as users), in order, each once.</param>
/// <param name="Problem">Why Bridge cannot deliver to the alias (an undeliverable target, a loop), or null.</param>
/// <param name="Loop">The problem is a loop or too deep a chain (not an undeliverable target).</param>
public sealed record AliasExpansion(string Alias, IReadOnlyList<string> Names, string Source, string? Problem, bool Loop = false);

public sealed class AliasTable
{
    public const int MaxDepth = 10;

    private readonly IReadOnlyList<string> _paths;
    private readonly HashSet<string> _localDomains;
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private volatile Loaded _loaded;
    private long _checkedTicks; // when the files were last looked at (UTC ticks)

    /// <param name="localDomains">Bridge:LocalDomains: a target local@domain elsewhere is a remote address.</param>
    public AliasTable(IReadOnlyList<string> paths, IEnumerable<string> localDomains, TimeProvider? time = null)
    {
        _paths = paths;
        _localDomains = new HashSet<string>(localDomains.Select(d => d.Trim().TrimEnd('.').ToLowerInvariant()), StringComparer.Ordinal) { "localhost" };
        _time = time ?? TimeProvider.System;
        _loaded = Load();
        _checkedTicks = _time.GetUtcNow().UtcTicks;
    }

    public bool IsEmpty => _paths.Count == 0;

    /// <summary>Told each problem of the files at every reload after a change (the log); the daemon sets it, and logs
    /// the problems of the first load itself.</summary>
    public Action<string>? Report { get; set; }

    /// <summary>What the files say wrong, with file and line: lines that are no alias, unreadable files and includes,
    /// and every target Bridge cannot deliver (a command, a file, a remote address).</summary>
    public IReadOnlyList<string> Problems => Refresh().Problems;

    /// <summary>The aliases as the files say now.</summary>
    public AliasFileContent Content => Refresh().Content;

    /// <summary>The expansion of <paramref name="name"/>, or null when it is no alias.</summary>
    /// <param name="localNameOf">For a target local@domain: its local name when the domain is local, else null.</param>
    public AliasExpansion? Expand(string name, Func<string, string?> localNameOf)
    {
        var entries = Content.Entries;
        if (!entries.TryGetValue(name, out var root))
        {
            return null;
        }
        var names = new List<string>();
        var chain = new List<string> { name };
        var problem = Visit(root, 1);
        return new AliasExpansion(name, names, root.Source, problem.Text, problem.Loop);

        (string? Text, bool Loop) Visit(AliasEntry entry, int depth)
        {
            foreach (var target in entry.Targets)
            {
                var local = target.Kind switch
                {
                    AliasTargetKind.Name => target.Value,
                    AliasTargetKind.Address => localNameOf(target.Value),
                    _ => null,
                };
                if (local is null)
                {
                    return ($"alias {name} expands to {target.Value} ({target.Source}), {Kind(target.Kind)}, which Bridge cannot deliver", false);
                }
                if (local == entry.Name || !entries.TryGetValue(local, out var next))
                {
                    if (!names.Contains(local, StringComparer.Ordinal))
                    {
                        names.Add(local); // a user (or a name that names itself: its user)
                    }
                    continue;
                }
                if (chain.Contains(local, StringComparer.Ordinal))
                {
                    return ($"alias {name} loops: {string.Join(" -> ", chain)} -> {local} ({target.Source})", true);
                }
                if (depth >= MaxDepth)
                {
                    return ($"alias {name} goes deeper than {MaxDepth} aliases ({target.Source})", true);
                }
                chain.Add(local);
                var inner = Visit(next, depth + 1);
                chain.RemoveAt(chain.Count - 1);
                if (inner.Text is not null)
                {
                    return inner;
                }
            }
            return (null, false);
        }
    }

    /// <summary>The files as last read, read again when one changed; looked at no more than once a second, and without
    /// a lock until then (every RCPT comes through here).</summary>
    private Loaded Refresh()
    {
        var now = _time.GetUtcNow().UtcTicks;
        if (_paths.Count == 0 || now - Volatile.Read(ref _checkedTicks) < TimeSpan.TicksPerSecond)
        {
            return _loaded;
        }
        lock (_gate)
        {
            if (now - _checkedTicks >= TimeSpan.TicksPerSecond)
            {
                Volatile.Write(ref _checkedTicks, now);
                if (Signature(_loaded.Content.FilesRead) != _loaded.Signature)
                {
                    _loaded = Load();
                }
            }
            return _loaded;
        }
    }

    /// <summary>One reading of the files, swapped whole so that content and problems always belong together.</summary>
    private sealed record Loaded(AliasFileContent Content, IReadOnlyList<string> Problems, string Signature);

    private Loaded Load()
    {
        var content = AliasFile.Read(_paths);
        var problems = content.Problems.Concat(content.Entries.Values.SelectMany(e => e.Targets
            .Where(t => t.Kind is AliasTargetKind.Command or AliasTargetKind.File ||
                (t.Kind == AliasTargetKind.Address && !_localDomains.Contains(t.Value[(t.Value.LastIndexOf('@') + 1)..].TrimEnd('.'))))
            .Select(t => $"{t.Source}: alias {e.Name}: {t.Value} is {Kind(t.Kind)}, which Bridge cannot deliver; mail to {e.Name} is refused at RCPT")))
            .ToList();
        foreach (var problem in problems)
        {
            Report?.Invoke(problem);
        }
        return new Loaded(content, problems, Signature(content.FilesRead));
    }

    private static string Kind(AliasTargetKind kind) => kind switch
    {
        AliasTargetKind.Command => "a command",
        AliasTargetKind.File => "a file",
        _ => "a remote address",
    };

    /// <summary>What changes when a file is edited, replaced or removed.</summary>
    private static string Signature(IEnumerable<string> files) => string.Join('|', files.Select(f =>
    {
        try
        {
            var info = new FileInfo(f);
            return info.Exists ? $"{f}:{info.LastWriteTimeUtc.Ticks}:{info.Length}" : $"{f}:-";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return $"{f}:?";
        }
    }));
}
