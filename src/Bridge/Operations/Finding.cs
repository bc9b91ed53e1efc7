// Job: one line of `mailbridge check`: a level, what was checked, what was found, and the fix when there is one.
// Failure: none; values only.
namespace Bridge.Operations;

public enum Level
{
    Ok,
    Warn,
    Fail,
}

public sealed record Finding(Level Level, string Subject, string Text, string? Fix = null)
{
    public override string ToString() =>
        $"{Level.ToString().ToUpperInvariant(),-4} {Subject}: {Text}{(Fix is null ? "" : $" -- fix: {Fix}")}";
}
