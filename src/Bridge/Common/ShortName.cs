// Job: decide whether a short name may become a file name under the spool directory.
// Failure: returns false; nothing that fails here is ever turned into a path.
using System.Text.RegularExpressions;

namespace Bridge.Common;

public static partial class ShortName
{
    [GeneratedRegex("^[a-z0-9_-][a-z0-9._-]{0,63}$", RegexOptions.CultureInvariant)]
    private static partial Regex SafePattern();

    /// <summary>[a-z0-9._-], no leading dot (so never "." or ".."), at most 64 characters.</summary>
    public static bool IsSafeFileName(string name) => SafePattern().IsMatch(name);
}
