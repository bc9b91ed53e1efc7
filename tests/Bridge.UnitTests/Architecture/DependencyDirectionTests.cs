using System.Text.RegularExpressions;
using Bridge.Tests.Support;

namespace Bridge.UnitTests.Architecture;

/// <summary>The folders of src/Bridge depend downward only (README "Layout"), sub-folders form no cycles, Intake/Adapters
/// is used only by Hosting's wiring (Adapters may use Intake, not the reverse), and the SMTP library is used only in
/// Intake/Adapters. Read from the source with its comments and string literals removed: every using (global, static,
/// alias), every fully qualified name, every partly qualified one (Native.Libc written inside namespace
/// Bridge.Operations resolves to Bridge.Native) and every use of a type of an enclosing namespace without either.</summary>
public partial class DependencyDirectionTests
{
    /// <summary>Each folder and the folders it may use. Anything not listed is a cycle or an upward dependency.</summary>
    private static readonly Dictionary<string, string[]> Allowed = new(StringComparer.Ordinal)
    {
        ["Common"] = ["Native"],
        ["Native"] = [],
        ["Observability"] = [],
        ["Routing"] = ["Common", "Native"],
        ["Delivery"] = ["Common", "Native", "Observability"],
        ["Configuration"] = ["Common", "Native", "Routing", "Delivery"],
        ["Intake"] = ["Common", "Native", "Observability", "Routing", "Delivery", "Configuration"],
        ["Collection"] = ["Common", "Native", "Routing", "Delivery", "Configuration"],
        ["Operations"] = ["Common", "Native", "Routing", "Delivery", "Configuration", "Collection"],
        ["Hosting"] = ["Common", "Native", "Observability", "Routing", "Delivery", "Configuration", "Intake", "Collection", "Operations"],
    };

    /// <summary>Only these folders may use Intake/Adapters (the library's side of the fence): itself and the wiring.</summary>
    private static readonly string[] AdapterUsers = ["Intake/Adapters", "Hosting"];

    /// <summary>The only folder that may name the SMTP library's namespaces.</summary>
    private const string LibraryFence = "Intake/Adapters";

    private static readonly string[] LibraryNamespaces = ["SmtpServer"];

    /// <summary>Sub-folder cycles tolerated: none (the last, Delivery <-> its agents' folders, ended when the dispatcher
    /// moved to Delivery/Dispatch). Each listed one must still occur, so the list only shrinks; a new one fails.</summary>
    private static readonly string[] KnownCycles = [];

    [Fact]
    public void Every_folder_uses_only_the_folders_below_it()
    {
        var tree = SourceTree.Read(Path.Combine(Repository.Root, "src", "Bridge"));
        var tops = tree.Files.Select(f => f.TopFolder).OfType<string>().Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        Assert.Equal(Allowed.Keys.Order(StringComparer.Ordinal), tops);

        var violations = new List<string>();
        foreach (var file in tree.Files.Where(f => f.TopFolder is not null))
        {
            foreach (var (used, how) in tree.FoldersUsedBy(file))
            {
                var top = used.Split('/')[0];
                if (top != file.TopFolder && !Allowed[file.TopFolder!].Contains(top))
                {
                    violations.Add($"{file.Path} uses {used} ({how})");
                }
            }
        }
        Assert.True(violations.Count == 0, string.Join("\n", violations));
    }

    [Fact]
    public void Only_Hosting_wires_the_adapters_and_Intake_never_uses_them()
    {
        var tree = SourceTree.Read(Path.Combine(Repository.Root, "src", "Bridge"));
        var violations = tree.Files.Where(f => f.Folder is { } folder && !AdapterUsers.Any(a => folder == a || folder.StartsWith(a + "/", StringComparison.Ordinal)))
            .SelectMany(f => tree.FoldersUsedBy(f).Where(u => u.Folder == "Intake/Adapters").Select(u => $"{f.Path} uses Intake/Adapters ({u.How})"))
            .ToList();
        Assert.True(violations.Count == 0, string.Join("\n", violations));
    }

    [Fact]
    public void Only_Intake_Adapters_names_the_SMTP_library()
    {
        var tree = SourceTree.Read(Path.Combine(Repository.Root, "src", "Bridge"));
        var violations = tree.Files.Where(f => f.Folder != LibraryFence)
            .SelectMany(f => SourceTree.LibraryUses(f.Code, LibraryNamespaces).Select(u => $"{f.Path}: {u}"))
            .ToList();
        var project = File.ReadAllText(Path.Combine(Repository.Root, "src", "Bridge", "Bridge.csproj"));
        violations.AddRange(LibraryNamespaces.Where(n => Regex.IsMatch(project, $@"<Using\s+Include=""{n}[.""]"))
            .Select(n => $"Bridge.csproj: a global <Using> of {n}"));
        Assert.True(violations.Count == 0, string.Join("\n", violations));
    }

    [Fact]
    public void No_two_folders_use_each_other_at_any_depth()
    {
        var tree = SourceTree.Read(Path.Combine(Repository.Root, "src", "Bridge"));
        var uses = tree.Files.Where(f => f.Folder is not null)
            .SelectMany(f => tree.FoldersUsedBy(f).Where(u => u.Folder != f.Folder).Select(u => (From: f.Folder!, To: u.Folder, Where: $"{f.Path}: {u.How}")))
            .ToList();
        var cycles = SourceTree.Cycles([.. uses.Select(u => (u.From, u.To)).Distinct()]);
        var added = cycles.Except(KnownCycles, StringComparer.Ordinal).ToList();
        Assert.True(added.Count == 0, string.Join("\n", added.Select(c => $"{c}, because:\n  " + string.Join("\n  ",
            uses.Where(u => c.Split(" <-> ").Contains(u.From) && c.Split(" <-> ").Contains(u.To)).GroupBy(u => (u.From, u.To))
                .Select(g => $"{g.Key.From} -> {g.Key.To} ({g.First().Where}{(g.Count() > 1 ? $", and {g.Count() - 1} more" : "")})")))));
        var fixedOnes = KnownCycles.Except(cycles, StringComparer.Ordinal).ToList();
        Assert.True(fixedOnes.Count == 0, $"no longer a cycle, take it off KnownCycles: {string.Join(", ", fixedOnes)}");
    }

    // The reader itself: each rule catches what it is meant to (the checks above would pass on an empty tree).

    [Fact]
    public void A_partly_qualified_name_resolves_through_the_enclosing_namespaces()
    {
        var tree = SourceTree.FromSources(
            ("Native/Libc.cs", "namespace Bridge.Native;\ninternal static class Libc { public static uint Geteuid() => 0; }"),
            ("Operations/Probe.cs", "namespace Bridge.Operations;\n// Intake.Nothing in a comment\ninternal static class Probe { static uint U() => Native.Libc.Geteuid(); static string S = \"Intake.X\"; }"),
            ("Intake/Gate.cs", "namespace Bridge.Intake;\ninternal sealed class Gate { }"));
        var probe = tree.Files.Single(f => f.Path == "Operations/Probe.cs");
        Assert.Equal(["Native"], tree.FoldersUsedBy(probe).Select(u => u.Folder));
    }

    [Fact]
    public void A_type_of_an_enclosing_namespace_counts_as_a_use_and_a_cycle_is_found()
    {
        var tree = SourceTree.FromSources(
            ("Intake/Gate.cs", "using Bridge.Intake.Adapters;\nnamespace Bridge.Intake;\ninternal sealed class Gate { Pipe? p; }"),
            ("Intake/Adapters/Pipe.cs", "namespace Bridge.Intake.Adapters;\ninternal sealed class Pipe { Gate? g; }"),
            ("Delivery/Spool/A.cs", "namespace Bridge.Delivery.Spool;\ninternal sealed class A { Store.B? b; }"),
            ("Delivery/Store/B.cs", "using Bridge.Delivery.Spool;\nnamespace Bridge.Delivery.Store;\ninternal sealed class B { A? a; }"));
        var pipe = tree.Files.Single(f => f.Path == "Intake/Adapters/Pipe.cs");
        Assert.Equal(["Intake"], tree.FoldersUsedBy(pipe).Select(u => u.Folder));
        var edges = tree.Files.SelectMany(f => tree.FoldersUsedBy(f).Where(u => u.Folder != f.Folder).Select(u => (f.Folder!, u.Folder))).Distinct().ToList();
        Assert.Equal(["Delivery/Spool <-> Delivery/Store", "Intake <-> Intake/Adapters"], SourceTree.Cycles(edges));
    }

    [Fact]
    public void The_library_is_found_in_a_using_or_a_qualified_name_but_not_in_a_comment()
    {
        Assert.Equal(["using SmtpServer.Mail", "SmtpServer.Protocol.SmtpResponse"], SourceTree.LibraryUses(SourceTree.StripCommentsAndStrings(
            "using SmtpServer.Mail;\n// SmtpServer.Nothing\nclass X { object r = new SmtpServer.Protocol.SmtpResponse(); string s = \"SmtpServer.Y\"; }"),
            LibraryNamespaces));
        Assert.Equal(["using SmtpServer"], SourceTree.LibraryUses("global using SmtpServer;", LibraryNamespaces));
    }

    /// <summary>The C# files of a source tree, each with its folder, namespace and code without comments and strings.</summary>
    private sealed partial class SourceTree
    {
        private readonly Dictionary<string, string> _folderOfNamespace;
        private readonly Dictionary<string, HashSet<string>> _typesOfNamespace;

        private SourceTree(List<SourceFile> files)
        {
            Files = files;
            _folderOfNamespace = files.Where(f => f.Namespace is not null && f.Folder is not null)
                .GroupBy(f => f.Namespace!).ToDictionary(g => g.Key, g => g.First().Folder!, StringComparer.Ordinal);
            _typesOfNamespace = files.Where(f => f.Namespace is not null).GroupBy(f => f.Namespace!)
                .ToDictionary(g => g.Key, g => g.SelectMany(f => TypeDeclaration().Matches(f.Code).Select(m => m.Groups[1].Value)).ToHashSet(StringComparer.Ordinal),
                    StringComparer.Ordinal);
        }

        public List<SourceFile> Files { get; }

        public static SourceTree Read(string root) => FromSources([.. Directory.GetFiles(root, "*.cs", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(root, p).Replace('\\', '/'))
            .Where(p => !p.StartsWith("bin/", StringComparison.Ordinal) && !p.StartsWith("obj/", StringComparison.Ordinal))
            .Select(p => (p, File.ReadAllText(Path.Combine(root, p))))]);

        public static SourceTree FromSources(params (string Path, string Text)[] sources) =>
            new([.. sources.Select(s => new SourceFile(s.Path, StripCommentsAndStrings(s.Text)))]);

        /// <summary>The folders (of this tree) <paramref name="file"/> uses, each with one example of how.</summary>
        public List<(string Folder, string How)> FoldersUsedBy(SourceFile file)
        {
            var found = new Dictionary<string, string>(StringComparer.Ordinal);
            void Use(string? ns, string how)
            {
                if (ns is not null && _folderOfNamespace.TryGetValue(ns, out var folder) && ns != file.Namespace)
                {
                    found.TryAdd(folder, how);
                }
            }
            foreach (Match m in UsingDirective().Matches(file.Code))
            {
                Use(LongestNamespace(m.Groups[1].Value), $"using {m.Groups[1].Value}");
            }
            foreach (Match m in QualifiedName().Matches(UsingDirective().Replace(file.Code, "")))
            {
                var name = m.Value.Replace("global::", "", StringComparison.Ordinal);
                if (name.StartsWith("Bridge.", StringComparison.Ordinal))
                {
                    Use(LongestNamespace(name), name);
                    continue;
                }
                // Partly qualified: the first name is looked up in each enclosing namespace, innermost first (C# 7.6.5).
                foreach (var enclosing in Enclosing(file.Namespace))
                {
                    var candidate = LongestNamespace($"{enclosing}.{name}");
                    if (candidate is not null && candidate.Length > enclosing.Length && candidate.StartsWith($"{enclosing}.{name.Split('.')[0]}", StringComparison.Ordinal))
                    {
                        Use(candidate, $"{name} inside namespace {file.Namespace}");
                        break;
                    }
                }
            }
            // A type of an enclosing namespace, named without using or qualification.
            foreach (var enclosing in Enclosing(file.Namespace).Where(e => e != file.Namespace))
            {
                if (!_typesOfNamespace.TryGetValue(enclosing, out var types))
                {
                    continue;
                }
                var own = file.Namespace is not null && _typesOfNamespace.TryGetValue(file.Namespace, out var mine) ? mine : [];
                var hit = Identifier().Matches(file.Code).Select(m => m.Value).FirstOrDefault(i => types.Contains(i) && !own.Contains(i));
                if (hit is not null)
                {
                    Use(enclosing, $"{hit} of the enclosing namespace {enclosing}");
                }
            }
            return [.. found.Select(kv => (kv.Key, kv.Value))];
        }

        /// <summary>"A &lt;-&gt; B" for every two folders that use each other directly or through others (one line per
        /// strongly connected group of more than one folder, its members in order).</summary>
        public static List<string> Cycles(IReadOnlyCollection<(string From, string To)> edges)
        {
            var next = edges.GroupBy(e => e.From).ToDictionary(g => g.Key, g => g.Select(e => e.To).ToList(), StringComparer.Ordinal);
            HashSet<string> Reach(string from)
            {
                var seen = new HashSet<string>(StringComparer.Ordinal);
                var stack = new Stack<string>([from]);
                while (stack.TryPop(out var at))
                {
                    foreach (var to in next.GetValueOrDefault(at) ?? [])
                    {
                        if (seen.Add(to))
                        {
                            stack.Push(to);
                        }
                    }
                }
                return seen;
            }
            var nodes = edges.SelectMany(e => new[] { e.From, e.To }).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            var reach = nodes.ToDictionary(n => n, Reach, StringComparer.Ordinal);
            return [.. nodes.Select(n => nodes.Where(m => m == n || (reach[n].Contains(m) && reach[m].Contains(n))).ToList())
                .Where(group => group.Count > 1).Select(group => string.Join(" <-> ", group)).Distinct(StringComparer.Ordinal)];
        }

        /// <summary>Each using of, or qualified name in, one of <paramref name="namespaces"/>.</summary>
        public static List<string> LibraryUses(string code, string[] namespaces) =>
        [
            .. UsingDirective().Matches(code).Select(m => m.Groups[1].Value)
                .Where(n => namespaces.Any(l => n == l || n.StartsWith(l + ".", StringComparison.Ordinal))).Select(n => $"using {n}"),
            .. QualifiedName().Matches(UsingDirective().Replace(code, "")).Select(m => m.Value.Replace("global::", "", StringComparison.Ordinal))
                .Where(n => namespaces.Any(l => n.StartsWith(l + ".", StringComparison.Ordinal))),
        ];

        private string? LongestNamespace(string name)
        {
            var parts = name.Split('.');
            for (var n = parts.Length; n > 0; n--)
            {
                var candidate = string.Join('.', parts[..n]);
                if (_folderOfNamespace.ContainsKey(candidate))
                {
                    return candidate;
                }
            }
            return null;
        }

        private static IEnumerable<string> Enclosing(string? ns)
        {
            for (var at = ns; !string.IsNullOrEmpty(at); at = at.Contains('.', StringComparison.Ordinal) ? at[..at.LastIndexOf('.')] : null)
            {
                yield return at;
            }
        }

        /// <summary>The code only: comments, string and character literals become spaces (an interpolated string's
        /// holes go too; a name used only there is not seen).</summary>
        public static string StripCommentsAndStrings(string text)
        {
            var code = new System.Text.StringBuilder(text.Length);
            for (var i = 0; i < text.Length; i++)
            {
                var c = text[i];
                var rest = text.AsSpan(i);
                if (rest.StartsWith("//"))
                {
                    while (i < text.Length && text[i] != '\n')
                    {
                        i++;
                    }
                    code.Append('\n');
                }
                else if (rest.StartsWith("/*"))
                {
                    var end = text.IndexOf("*/", i + 2, StringComparison.Ordinal);
                    i = end < 0 ? text.Length : end + 1;
                    code.Append(' ');
                }
                else if (rest.StartsWith("\"\"\""))
                {
                    var end = text.IndexOf("\"\"\"", i + 3, StringComparison.Ordinal);
                    i = end < 0 ? text.Length : end + 2;
                    code.Append("\"\"");
                }
                else if (c == '"' || (c is '@' or '$' && rest.Length > 1 && rest[1..].TrimStart("$@").StartsWith("\"")))
                {
                    var verbatim = false;
                    while (text[i] != '"')
                    {
                        verbatim |= text[i] == '@';
                        i++;
                    }
                    for (i++; i < text.Length; i++)
                    {
                        if (!verbatim && text[i] == '\\')
                        {
                            i++;
                        }
                        else if (text[i] == '"' && verbatim && i + 1 < text.Length && text[i + 1] == '"')
                        {
                            i++;
                        }
                        else if (text[i] == '"' || (!verbatim && text[i] == '\n'))
                        {
                            break;
                        }
                    }
                    code.Append("\"\"");
                }
                else if (c == '\'' && CharLiteral().Match(text, i) is { Success: true } literal)
                {
                    i += literal.Length - 1;
                    code.Append("' '");
                }
                else
                {
                    code.Append(c);
                }
            }
            return code.ToString();
        }

        [GeneratedRegex(@"'(?:\\.[0-9A-Fa-f]*|[^'\\\n])'")]
        private static partial Regex CharLiteral();

        [GeneratedRegex(@"^\s*(?:global\s+)?using\s+(?:static\s+)?(?:\w+\s*=\s*)?(?:global::)?([A-Za-z_][\w.]*)\s*;", RegexOptions.Multiline)]
        private static partial Regex UsingDirective();

        [GeneratedRegex(@"(?<![\w.])(?:global::)?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")]
        private static partial Regex QualifiedName();

        [GeneratedRegex(@"(?<![\w.])[A-Z]\w*")]
        private static partial Regex Identifier();

        [GeneratedRegex(@"\b(?:class|struct|interface|enum|record)\s+(?:class\s+|struct\s+)?([A-Z]\w*)")]
        private static partial Regex TypeDeclaration();

        [GeneratedRegex(@"^\s*namespace\s+([\w.]+)", RegexOptions.Multiline)]
        public static partial Regex NamespaceDeclaration();
    }

    private sealed record SourceFile(string Path, string Code)
    {
        /// <summary>The folder, "Delivery/Spool"; null for a file at the root (the entry point).</summary>
        public string? Folder => Path.Contains('/', StringComparison.Ordinal) ? Path[..Path.LastIndexOf('/')] : null;

        public string? TopFolder => Folder?.Split('/')[0];

        public string? Namespace => SourceTree.NamespaceDeclaration().Match(Code) is { Success: true } m ? m.Groups[1].Value : null;
    }
}
