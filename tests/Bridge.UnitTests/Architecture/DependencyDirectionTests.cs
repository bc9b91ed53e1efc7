using System.Text.RegularExpressions;
using Bridge.Tests.Support;

namespace Bridge.UnitTests.Architecture;

/// <summary>The folders of src/Bridge depend downward only (README "Layout"): read from the source's using lines.</summary>
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

    [GeneratedRegex(@"^using (?:static )?Bridge\.([A-Za-z]+)[.;]", RegexOptions.Multiline)]
    private static partial Regex BridgeUsing();

    [GeneratedRegex(@"\bBridge\.([A-Za-z]+)\.[A-Z]")]
    private static partial Regex QualifiedName();

    [Fact]
    public void Every_folder_uses_only_the_folders_below_it()
    {
        var source = Path.Combine(Repository.Root, "src", "Bridge");
        var folders = Directory.GetDirectories(source).Select(Path.GetFileName).OfType<string>()
            .Where(f => f is not ("bin" or "obj")).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(Allowed.Keys.Order(StringComparer.Ordinal), folders);

        var violations = new List<string>();
        foreach (var folder in folders)
        {
            foreach (var file in Directory.GetFiles(Path.Combine(source, folder), "*.cs", SearchOption.AllDirectories))
            {
                var text = File.ReadAllText(file);
                var used = BridgeUsing().Matches(text).Select(m => m.Groups[1].Value)
                    .Concat(QualifiedName().Matches(text).Select(m => m.Groups[1].Value))
                    .Where(Allowed.ContainsKey)
                    .Distinct(StringComparer.Ordinal);
                violations.AddRange(used.Where(u => u != folder && !Allowed[folder].Contains(u))
                    .Select(u => $"{Path.GetRelativePath(source, file)} uses {u}"));
            }
        }
        Assert.Empty(violations);
    }
}
