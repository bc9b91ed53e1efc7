// Job: the aliases of Bridge:AliasFiles in force, and the expansion of a name: to the local names it ends at, in
// order, each once, through aliases of aliases, where a name that names itself is its user (Postfix's "root: root,
// backup"), a cycle or more than MaxDepth levels is a loop, more than Bridge:Aliases:MaxMembers users is refused, and
// a command, file, remote or unusable :include: target makes the whole alias undeliverable by Bridge (refused at RCPT,
// never a silent loss).
// Reading never happens where a delivery waits: the files are read on a thread of their own (the first reading
// bounded by FirstReadTimeout), and while the daemon runs a watcher thread looks at them every half second and
// reads them again when one changed, building the new table aside and swapping it in whole. A reading that leaves a
// file of Bridge:AliasFiles unread keeps the last good table in force (logged) and is tried again at the next change;
// when there is no good table yet (the first reading failed), every lookup answers "not available" and Routing defers.
// Failure: never throws; what the files say wrong is reported (Report, e.g. the log) at each reading, with file and
// line and no byte of any file's content, and listed in Problems for `mailbridge check`.
namespace Bridge.Routing;

/// <param name="Names">The local names the alias ends at (not yet checked as users), in order, each once.</param>
/// <param name="Problem">Why Bridge cannot deliver to the alias (an undeliverable target, a loop, too many members), or
/// null. Names the alias and file:line, never what a file holds.</param>
/// <param name="Loop">The problem is a loop or too deep a chain (not an undeliverable target).</param>
public sealed record AliasExpansion(string Alias, IReadOnlyList<string> Names, string Source, string? Problem, bool Loop = false);

public sealed class AliasTable
{
    public const int MaxDepth = 10;

    /// <summary>How long a reading may take before the table goes on without it (a file system that does not answer).</summary>
    public static readonly TimeSpan FirstReadTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How often the watcher looks at the files.</summary>
    public static readonly TimeSpan WatchInterval = TimeSpan.FromMilliseconds(500);

    private readonly IReadOnlyList<string> _paths;
    private readonly HashSet<string> _localDomains;
    private readonly AliasLimits _limits;
    private readonly Lock _gate = new();
    private volatile Loaded _loaded;
    private IReadOnlyList<(string Path, string Seen)> _attemptedFiles = []; // the files the last reading (good or not) looked at
    private int _reading; // 1 while a reading runs (one at a time, even when one never returns)
    private volatile bool _watching;

    /// <param name="localDomains">Bridge:LocalDomains: a target local@domain elsewhere is a remote address.</param>
    public AliasTable(IReadOnlyList<string> paths, IEnumerable<string> localDomains, AliasLimits? limits = null)
    {
        _paths = paths;
        _limits = limits ?? AliasLimits.Default;
        _localDomains = new HashSet<string>(localDomains.Select(d => d.Trim().TrimEnd('.').ToLowerInvariant()), StringComparer.Ordinal) { "localhost" };
        _loaded = Loaded.None;
        if (_paths.Count > 0)
        {
            FirstReading();
        }
    }

    public bool IsEmpty => _paths.Count == 0;

    /// <summary>False until one reading read every file of Bridge:AliasFiles: then no name can be known not to be an alias.</summary>
    public bool Available => _paths.Count == 0 || _loaded.Good;

    /// <summary>Told each problem at every reading after a change (the log); the daemon sets it, and logs the problems of
    /// the first reading itself. Texts name file and line, never what a file holds.</summary>
    public Action<string>? Report { get; set; }

    /// <summary>What the files say wrong, with file and line: lines that are no alias, unreadable files and includes,
    /// and every target Bridge cannot deliver (a command, a file, a remote address, an unusable include).</summary>
    public IReadOnlyList<AliasProblem> Problems => _loaded.Problems;

    /// <summary>The aliases as the table in force has them.</summary>
    public AliasFileContent Content => _loaded.Content;

    /// <summary>The expansion of <paramref name="name"/>, or null when it is no alias.</summary>
    /// <param name="localNameOf">For a target local@domain: its local name when the domain is local, else null.</param>
    public AliasExpansion? Expand(string name, Func<string, string?> localNameOf)
    {
        var entries = _loaded.Content.Entries;
        if (!entries.TryGetValue(name, out var root))
        {
            return null;
        }
        var names = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var expanded = new HashSet<string>(StringComparer.Ordinal); // entries already walked: each once, so a wide DAG stays linear
        var chain = new List<string> { name };
        var walkedLists = new HashSet<IReadOnlyList<AliasTarget>>(ReferenceEqualityComparer.Instance);
        var problem = Visit(root, 1);
        return new AliasExpansion(name, names, root.Source, problem.Text, problem.Loop);

        (string? Text, bool Loop) Visit(AliasEntry entry, int depth)
        {
            expanded.Add(entry.Name);
            // Each include list once per expansion (lists may name each other: the walk stays linear).
            foreach (var target in AliasFileContent.Leaves(entry.Targets, walkedLists))
            {
                var local = target.Kind switch
                {
                    AliasTargetKind.Name => target.Value,
                    AliasTargetKind.Address => localNameOf(target.Value),
                    _ => null,
                };
                if (local is null)
                {
                    // The reply names the alias and file:line only: why an include is unusable is in the log.
                    return (target.Kind == AliasTargetKind.Unusable
                        ? $"alias {name}: the :include: file named at {target.Source} cannot be used (see Bridge's log); mail system configuration error"
                        : $"alias {name} expands to {Kind(target.Kind)} ({target.Source}), which Bridge cannot deliver; it is delivered by the MTA's own aliases, not by Bridge",
                        false);
                }
                if (local == entry.Name || !entries.TryGetValue(local, out var next))
                {
                    if (seen.Add(local))
                    {
                        names.Add(local); // a user (or a name that names itself: its user)
                        if (names.Count > _limits.MaxMembers)
                        {
                            return ($"alias {name} expands to more than {_limits.MaxMembers} users ({AliasLimits.MaxMembersKey})", false);
                        }
                    }
                    continue;
                }
                if (chain.Contains(local, StringComparer.Ordinal))
                {
                    return ($"alias {name} loops: {string.Join(" -> ", chain)} -> {local} ({target.Source})", true);
                }
                if (expanded.Contains(local))
                {
                    continue; // reached again another way: its users are in already
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

    /// <summary>From now on, look at the files every WatchInterval and read them again when one changed (the daemon;
    /// the verbs read once). Ends with StopWatching, when a newer configuration replaces this table.</summary>
    public void StartWatching()
    {
        if (_paths.Count == 0 || _watching)
        {
            return;
        }
        _watching = true;
        new Thread(() =>
        {
            while (_watching)
            {
                Thread.Sleep(WatchInterval);
                if (_watching)
                {
                    CheckForChanges();
                }
            }
        })
        { IsBackground = true, Name = "bridge-aliases" }.Start();
    }

    public void StopWatching() => _watching = false;

    /// <summary>Reads the files again when one changed since the last reading (on the calling thread, which may block:
    /// the watcher's). Returns true when a new table is in force.</summary>
    public bool CheckForChanges()
    {
        if (_paths.Count == 0 || Interlocked.CompareExchange(ref _reading, 1, 0) != 0)
        {
            return false;
        }
        try
        {
            if (_attemptedFiles.Count > 0 && _attemptedFiles.All(f => AliasFileContent.SignatureOf(f.Path) == f.Seen))
            {
                return false;
            }
            return Read();
        }
        finally
        {
            Volatile.Write(ref _reading, 0);
        }
    }

    /// <summary>The first reading, on a thread of its own: the constructor waits for it at most FirstReadTimeout.</summary>
    private void FirstReading()
    {
        Volatile.Write(ref _reading, 1);
        using var done = new ManualResetEventSlim();
        var thread = new Thread(() =>
        {
            try
            {
                Read();
            }
            finally
            {
                Volatile.Write(ref _reading, 0);
                try
                {
                    done.Set();
                }
                catch (ObjectDisposedException)
                {
                    // the constructor stopped waiting long ago
                }
            }
        })
        { IsBackground = true, Name = "bridge-aliases-first" };
        thread.Start();
        if (!done.Wait(FirstReadTimeout))
        {
            var problem = new AliasProblem(string.Join(", ", _paths),
                $"the alias files were not read within {FirstReadTimeout.TotalSeconds:0} s (a file system that does not answer?); mail is deferred until they are");
            lock (_gate)
            {
                if (!_loaded.Good)
                {
                    _loaded = Loaded.None with { Problems = [problem] };
                }
            }
        }
    }

    /// <summary>One reading; swapped in whole when every file of Bridge:AliasFiles was read, else the last good table stays.</summary>
    private bool Read()
    {
        var content = AliasFile.Read(_paths, _limits);
        var walked = new HashSet<IReadOnlyList<AliasTarget>>(ReferenceEqualityComparer.Instance); // each include's problems once
        var problems = content.Unreadable.Concat(content.Problems).Concat(content.Entries.Values.SelectMany(e => AliasFileContent.Leaves(e.Targets, walked)
            .Where(t => t.Kind is AliasTargetKind.Command or AliasTargetKind.File or AliasTargetKind.Unusable ||
                (t.Kind == AliasTargetKind.Address && !_localDomains.Contains(t.Value[(t.Value.LastIndexOf('@') + 1)..].TrimEnd('.'))))
            .Select(t => new AliasProblem(t.Source, $"alias {e.Name}: {Undeliverable(t)}, which Bridge cannot deliver; mail to {e.Name} is refused at RCPT",
                t.Kind == AliasTargetKind.Unusable ? $":include:{t.Value}" : t.Value))))
            .ToList();
        lock (_gate)
        {
            _attemptedFiles = content.FilesRead; // each file as it was when it was read: a later edit differs
            if (content.Unreadable.Count > 0 && _loaded.Good)
            {
                foreach (var problem in content.Unreadable)
                {
                    Report?.Invoke($"{problem}; the aliases read before stay in force until it can be read");
                }
                return false;
            }
            _loaded = new Loaded(content, problems, content.Unreadable.Count == 0);
        }
        foreach (var problem in problems)
        {
            Report?.Invoke(problem.ToString());
        }
        return true;
    }

    /// <summary>What a target is, for a problem: its kind (and why an include is unusable), never its text.</summary>
    private static string Undeliverable(AliasTarget target) => target.Kind == AliasTargetKind.Unusable
        ? $"the :include: file named there {target.Why}"
        : $"a target is {Kind(target.Kind)}";

    private static string Kind(AliasTargetKind kind) => kind switch
    {
        AliasTargetKind.Command => "a command",
        AliasTargetKind.File => "a file",
        _ => "a remote address",
    };

    /// <summary>One reading, swapped whole so that content and problems always belong together.</summary>
    /// <param name="Good">Every file of Bridge:AliasFiles was read.</param>
    private sealed record Loaded(AliasFileContent Content, IReadOnlyList<AliasProblem> Problems, bool Good)
    {
        public static readonly Loaded None = new(new AliasFileContent(new Dictionary<string, AliasEntry>(), [], [], []), [], false);
    }

}
