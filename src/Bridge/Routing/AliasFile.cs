// Job: read aliases(5) files as Postfix and Sendmail do: "name: target, target", lines that begin with white space
// continue the previous entry, "#" comments, quoted targets, ":include:/path" (a file of more targets, one or more
// per line), targets that are local names, addresses, "|commands" or "/files". Names are case-insensitive; a later
// entry for the same name is a problem (the first one counts).
// Whose rights read what (Postfix local(8): "the owner rights of the :include: file or alias database"): the files of
// Bridge:AliasFiles are the administrator's and are read with Bridge's rights; an :include: named in a file owned by
// root is opened with root's (Bridge's) rights, one named in a file owned by anyone else with that owner's rights,
// and once a user's rights are in force they stay for every include nested below (a user never borrows the rights
// of another user's file by naming it). Every file is read through UntrustedFile (no link followed, never blocking,
// one link, a size limit); an include that others than its owner can write, that is not an absolute path, that is
// nested too deep or that a symbolic link of another user than root leads to is not used either.
// Failure: never throws. A file of Bridge:AliasFiles that cannot be read makes the reading incomplete (Unreadable);
// an include that cannot be used is a target of kind Unusable, which makes its alias undeliverable (refused at RCPT).
// No problem text carries a byte of what a file holds: each names the file and line (and the alias); what the line
// holds is kept apart (Detail) for `mailbridge check`, which the administrator runs.
using System.Text;
using Bridge.Native;

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

    /// <summary>An :include: that cannot be used (see Why): the alias that names it is undeliverable.</summary>
    Unusable,

    /// <summary>An :include: that was read: its targets are in Included (shared by every alias naming the same file with
    /// the same rights, so a reading stays linear in the bytes read, however often lists name each other).</summary>
    Include,
}

/// <param name="Value">The target as written (for Unusable: the path the :include: names).</param>
/// <param name="Source">"file:line" where the target was written (the include file's, for an included one).</param>
/// <param name="Why">For Unusable: why the include named there cannot be used; no byte of any file's content.</param>
public sealed record AliasTarget(AliasTargetKind Kind, string Value, string Source, string? Why = null)
{
    /// <summary>For Include: the targets the file holds.</summary>
    public IReadOnlyList<AliasTarget>? Included { get; init; }
}

/// <param name="Source">"file:line" of the entry's first line.</param>
public sealed record AliasEntry(string Name, IReadOnlyList<AliasTarget> Targets, string Source);

/// <param name="Text">What is wrong, naming the alias but no byte of what a file holds (for logs and replies).</param>
/// <param name="Detail">What the line holds, for `mailbridge check` only.</param>
public sealed record AliasProblem(string Source, string Text, string? Detail = null)
{
    public override string ToString() => $"{Source}: {Text}";

    /// <summary>With what the line holds (`mailbridge check`).</summary>
    public string Described => Detail is null ? ToString() : $"{this}: {Detail}";
}

/// <param name="MaxFileBytes">Bridge:Aliases:MaxFileBytes: the largest alias or include file read.</param>
/// <param name="MaxMembers">Bridge:Aliases:MaxMembers: the most users one alias may expand to.</param>
public sealed record AliasLimits(long MaxFileBytes, int MaxMembers)
{
    public const string MaxFileBytesKey = "Bridge:Aliases:MaxFileBytes";
    public const string MaxMembersKey = "Bridge:Aliases:MaxMembers";

    public static readonly AliasLimits Default = new(4L << 20, 10_000);
}

/// <param name="FilesRead">Every file the reading looked at (the alias files and their includes), with what it was at
/// the moment it was read (Seen), for change detection.</param>
/// <param name="Unreadable">Files of Bridge:AliasFiles that could not be read at all: the reading is incomplete.</param>
public sealed record AliasFileContent(IReadOnlyDictionary<string, AliasEntry> Entries, IReadOnlyList<AliasProblem> Problems,
    IReadOnlyList<(string Path, string Seen)> FilesRead, IReadOnlyList<AliasProblem> Unreadable)
{
    /// <summary>The targets an entry reaches through its includes, each include's once (the first time it is reached in
    /// one walk, which <paramref name="walked"/> remembers across calls).</summary>
    public static IEnumerable<AliasTarget> Leaves(IReadOnlyList<AliasTarget> targets, HashSet<IReadOnlyList<AliasTarget>>? walked = null)
    {
        walked ??= new HashSet<IReadOnlyList<AliasTarget>>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<IEnumerator<AliasTarget>>();
        pending.Push(targets.GetEnumerator());
        while (pending.Count > 0)
        {
            var current = pending.Peek();
            if (!current.MoveNext())
            {
                current.Dispose();
                pending.Pop();
                continue;
            }
            var target = current.Current;
            if (target.Kind == AliasTargetKind.Include)
            {
                if (walked.Add(target.Included!))
                {
                    pending.Push(target.Included!.GetEnumerator());
                }
                continue;
            }
            yield return target;
        }
    }

    /// <summary>What a file is now, as FilesRead records it (stat: nothing is opened, so nothing can block on a FIFO;
    /// a file system that does not answer within a second is "hung", as it was recorded when its reading timed out,
    /// so a hanging path is not read again, and tried again once it answers).</summary>
    public static string SignatureOf(string path) => UntrustedFile.StatWithin(path) switch
    {
        null => HungSignature,
        { Result: 0 } seen => Signature(seen.Stat),
        { } failed => $"-{failed.Errno}",
    };

    internal const string HungSignature = "hung";

    internal static string Signature(FileStat stat) =>
        $"{stat.Device}:{stat.Inode}:{stat.Size}:{stat.ChangeTimeSeconds}.{stat.ChangeTimeNanoseconds}:{stat.Mode}:{stat.Uid}";
}

public static class AliasFile
{
    private const int MaxIncludeDepth = 5;

    public static AliasFileContent Read(IEnumerable<string> paths, AliasLimits? limits = null) => new Reading(limits ?? AliasLimits.Default).Run(paths);

    private sealed class Reading(AliasLimits limits)
    {
        private readonly Dictionary<string, AliasEntry> _entries = new(StringComparer.Ordinal);
        private readonly List<AliasProblem> _problems = [];
        private readonly List<AliasProblem> _unreadable = [];
        private readonly List<(string Path, string Seen)> _files = [];

        /// <summary>Each include once per set of rights and depth: an alias file naming one list a thousand times reads it once.</summary>
        private readonly Dictionary<(string Path, uint? Uid, int Depth), (IReadOnlyList<AliasTarget>? List, string? Why)> _includes = [];

        public AliasFileContent Run(IEnumerable<string> paths)
        {
            foreach (var path in paths)
            {
                // The administrator named this file: a link to it is followed, as the administrator's own tools would.
                var read = UntrustedFile.ReadWithin(path, null, limits.MaxFileBytes, AliasLimits.MaxFileBytesKey, followLink: true);
                Seen(path, read);
                var problem = read.Problem ?? (OthersMayWrite(read.Stat) ? $"can be written by others than its owner (mode {Octal(read.Stat)})" : null);
                if (problem is not null)
                {
                    _unreadable.Add(new AliasProblem(path, $"the alias file {problem}; it is not used"));
                    continue;
                }
                var (rights, rightsProblem) = RightsAfter(null, read.Stat);
                var lines = Lines(read.Content!);
                foreach (var (text, line) in LogicalLines(lines))
                {
                    Entry(text, $"{path}:{line}", rights, rightsProblem);
                }
            }
            return new AliasFileContent(_entries, _problems, _files, _unreadable);
        }

        private void Entry(string text, string source, AccountRights? rights, string? rightsProblem)
        {
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            var name = colon > 0 ? Unquote(text[..colon].Trim()).ToLowerInvariant() : "";
            if (name.Length == 0 || name.Any(char.IsWhiteSpace))
            {
                _problems.Add(new AliasProblem(source, "not an alias (\"name: target, ...\")", Shorten(text)));
                return;
            }
            var targets = new List<AliasTarget>();
            foreach (var value in SplitTargets(text[(colon + 1)..]))
            {
                AddTarget(value, source, targets, 0, rights, rightsProblem);
            }
            if (targets.Count == 0)
            {
                _problems.Add(new AliasProblem(source, $"alias {name} has no target"));
            }
            else if (!_entries.TryAdd(name, new AliasEntry(name, targets, source)))
            {
                _problems.Add(new AliasProblem(source, $"alias {name} is defined again (the first definition, {_entries[name].Source}, counts)"));
            }
        }

        /// <param name="rights">Whose rights open an include named here (null: Bridge's, for a file of root's).</param>
        /// <param name="rightsProblem">Why no include named here can be opened (its file's owner has no account), or null.</param>
        private void AddTarget(string value, string source, List<AliasTarget> targets, int depth, AccountRights? rights, string? rightsProblem)
        {
            if (!value.StartsWith(":include:", StringComparison.OrdinalIgnoreCase))
            {
                var kind = value.StartsWith('|') ? AliasTargetKind.Command
                    : value.StartsWith('/') ? AliasTargetKind.File
                    : value.Contains('@', StringComparison.Ordinal) ? AliasTargetKind.Address
                    : AliasTargetKind.Name;
                // "john doe"@afp548.com names the local part RCPT "john doe"@afp548.com routes: john doe
                var target = kind == AliasTargetKind.Address ? EnvelopeAddress.UnquoteAddress(value) : value;
                targets.Add(new AliasTarget(kind, kind is AliasTargetKind.Name or AliasTargetKind.Address ? target.ToLowerInvariant() : target, source));
                return;
            }
            var path = value[":include:".Length..].Trim();
            if (rightsProblem is not null)
            {
                targets.Add(new AliasTarget(AliasTargetKind.Unusable, path, source, rightsProblem));
                return;
            }
            if (depth >= MaxIncludeDepth)
            {
                targets.Add(new AliasTarget(AliasTargetKind.Unusable, path, source, $"is nested more than {MaxIncludeDepth} includes deep"));
                return;
            }
            if (!Path.IsPathRooted(path))
            {
                targets.Add(new AliasTarget(AliasTargetKind.Unusable, path, source, "is not an absolute path"));
                return;
            }
            var key = (path, rights?.Uid, depth);
            if (!_includes.TryGetValue(key, out var included))
            {
                included = Include(path, depth, rights);
                _includes[key] = included;
            }
            // The file itself unusable: the target here says why; a list that names something unusable keeps that
            // problem where that list names it.
            targets.Add(included.Why is not null
                ? new AliasTarget(AliasTargetKind.Unusable, path, source, included.Why)
                : new AliasTarget(AliasTargetKind.Include, path, source) { Included = included.List });
        }

        /// <summary>The file's own stat when it was opened (so an edit during the reading is seen later), else stat.</summary>
        private void Seen(string path, UntrustedRead read) =>
            _files.Add((path, read.Content is not null ? AliasFileContent.Signature(read.Stat) : read.Hung ? AliasFileContent.HungSignature : AliasFileContent.SignatureOf(path)));

        /// <summary>The targets the include file lists, or why it cannot be used.</summary>
        private (IReadOnlyList<AliasTarget>? List, string? Why) Include(string path, int depth, AccountRights? rights)
        {
            var read = UntrustedFile.ReadWithin(path, rights, limits.MaxFileBytes, AliasLimits.MaxFileBytesKey);
            Seen(path, read);
            var why = read.Problem
                ?? (OthersMayWrite(read.Stat) ? $"can be written by others than its owner (mode {Octal(read.Stat)})" : null)
                ?? (rights is null ? ForeignLinkOnTheWay(path) : null);
            if (why is not null)
            {
                return (null, why);
            }
            var (nested, nestedProblem) = RightsAfter(rights, read.Stat);
            var list = new List<AliasTarget>();
            var lines = Lines(read.Content!);
            for (var i = 0; i < lines.Length; i++)
            {
                var line = lines[i].Trim();
                if (line.Length == 0 || line.StartsWith('#'))
                {
                    continue;
                }
                foreach (var included in SplitTargets(line))
                {
                    AddTarget(included, $"{path}:{i + 1}", list, depth + 1, nested, nestedProblem);
                }
            }
            return (list, null);
        }

        /// <summary>The rights the includes named in a file are opened with: once a user's, that user's; in a file of
        /// root's read with root's rights, root's; in anyone else's file, its owner's.</summary>
        private static (AccountRights? Rights, string? Problem) RightsAfter(AccountRights? current, FileStat file)
        {
            if (current is not null || file.Uid == 0)
            {
                return (current, null);
            }
            return AccountRights.OfUid(file.Uid) is { } owner
                ? (owner, null)
                : (null, $"is named in a file owned by uid {file.Uid}, which has no account whose rights could open it");
        }

        /// <summary>With root's rights, an include must not be reached through a symbolic link that another user made
        /// (the user would choose which of root's files is read). Best effort: the path is looked at after the open.</summary>
        private static string? ForeignLinkOnTheWay(string path)
        {
            for (var directory = Path.GetDirectoryName(path); !string.IsNullOrEmpty(directory) && directory != "/"; directory = Path.GetDirectoryName(directory))
            {
                if (Libc.Lstat(directory, out var stat) == 0 && stat.IsSymbolicLink && stat.Uid != 0)
                {
                    return $"is reached through a symbolic link that uid {stat.Uid} owns";
                }
            }
            return null;
        }
    }

    /// <summary>Writable by group or others: someone besides its owner decides what it says.</summary>
    private static bool OthersMayWrite(FileStat stat) => (stat.Permissions & 0x12) != 0; // 022

    private static string Octal(FileStat stat) => Convert.ToString(stat.Permissions, 8);

    private static string[] Lines(byte[] content) =>
        Encoding.UTF8.GetString(content).Split('\n').Select(l => l.TrimEnd('\r')).ToArray();

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

    /// <summary>Comma-separated targets; a comma inside double quotes belongs to the target, and inside them a backslash
    /// takes the next character as itself (a quoted-pair, as Unquote reads it: \" does not end the quotes).</summary>
    private static IEnumerable<string> SplitTargets(string text)
    {
        var part = new StringBuilder();
        var quoted = false;
        var escaped = false;
        foreach (var c in text)
        {
            if (escaped)
            {
                escaped = false;
                part.Append(c);
            }
            else if (c == '\\' && quoted)
            {
                escaped = true;
                part.Append(c);
            }
            else if (c == '"')
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

    /// <summary>A name or a whole target in double quotes ("|command arg", "john doe"), read as an RFC 5321 quoted string.</summary>
    private static string Unquote(string value) => EnvelopeAddress.Unquote(value);

    private static string Shorten(string text) => text.Length <= 60 ? text : text[..60] + "...";
}
