// Job: a private directory per test under /tmp, with a chosen mode (the spool directory is 1777 like
// Mac OS X Server's /var/mail), removed afterwards.
// Failure: cleanup errors are ignored (a test's result must not depend on them).
namespace Bridge.Tests.Support;

public sealed class TempDir : IDisposable
{
    public TempDir(string prefix = "bridge-test", UnixFileMode? mode = null)
    {
        Path = Directory.CreateTempSubdirectory(prefix + "-").FullName;
        File.SetUnixFileMode(Path, mode ?? (UnixFileMode)Convert.ToInt32("755", 8));
    }

    public string Path { get; }

    public string this[string name] => System.IO.Path.Combine(Path, name);

    public static UnixFileMode Mode(string octal) => (UnixFileMode)Convert.ToInt32(octal, 8);

    public string CreateSubdirectory(string name, string octalMode = "755")
    {
        var path = this[name];
        Directory.CreateDirectory(path);
        File.SetUnixFileMode(path, Mode(octalMode));
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
