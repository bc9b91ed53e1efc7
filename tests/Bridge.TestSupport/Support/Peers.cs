// Job: make sure a real peer the tests need is installed, and that the tests run as root.
// Failure: a missing peer fails the test with the command that installs it (never a skip).
using Bridge.Native;

namespace Bridge.Tests.Support;

public static class Peers
{
    private static readonly string[] SearchPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

    public static string Require(string program, string package)
    {
        foreach (var directory in SearchPath)
        {
            var path = Path.Combine(directory, program);
            if (File.Exists(path))
            {
                return path;
            }
        }
        throw new InvalidOperationException(
            $"{program} is not installed: run ./test.sh (installs every peer) or apt-get install -y {package}");
    }

    public static void RequireRoot()
    {
        if (Libc.Geteuid() != 0)
        {
            throw new InvalidOperationException(
                "integration tests must run as root (they create mailboxes for other users and start Postfix and Dovecot): sudo ./test.sh");
        }
    }
}
