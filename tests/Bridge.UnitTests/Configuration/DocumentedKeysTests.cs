using System.Reflection;
using System.Text.RegularExpressions;
using Bridge.Configuration;
using Bridge.Hosting;
using Bridge.Tests.Support;

namespace Bridge.UnitTests.Configuration;

/// <summary>Pure logic: every configuration key Bridge binds is a row of README's key table, the one source the man
/// page mailbridge.json(5) is rendered from (deploy/man/render.py), and every row names a key that exists.</summary>
public partial class DocumentedKeysTests
{
    [GeneratedRegex(@"`(Bridge:[A-Za-z:]+)`")]
    private static partial Regex KeyInCell();

    private static IEnumerable<string> Keys(Type type, string prefix)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            var key = $"{prefix}:{property.Name}";
            var propertyType = property.PropertyType;
            if (propertyType.IsClass && propertyType != typeof(string) && !propertyType.IsGenericType)
            {
                foreach (var inner in Keys(propertyType, key))
                {
                    yield return inner;
                }
            }
            else
            {
                yield return key;
            }
        }
    }

    private static HashSet<string> DocumentedKeys()
    {
        var readme = File.ReadAllText(Path.Combine(Repository.Root, "README.md"));
        var configuration = readme[readme.IndexOf("\n## Configuration", StringComparison.Ordinal)..];
        configuration = configuration[..configuration.IndexOf("\n## ", 5, StringComparison.Ordinal)];
        var rows = configuration.Split('\n').Where(l => l.StartsWith("| `Bridge:", StringComparison.Ordinal));
        return rows.SelectMany(r => KeyInCell().Matches(r.Split(" | ")[0]).Select(m => m.Groups[1].Value)).ToHashSet(StringComparer.Ordinal);
    }

    [Fact]
    public void Every_key_is_in_the_readme_table_and_every_row_is_a_key()
    {
        var keys = Keys(typeof(BridgeOptions), "Bridge").Where(k => k != "Bridge:Users:ShortNames" && k != "Bridge:Users:Mode").ToHashSet(StringComparer.Ordinal);
        var documented = DocumentedKeys();

        Assert.Empty(keys.Except(documented).Order());
        Assert.Empty(documented.Except(keys).Order());
    }
}
