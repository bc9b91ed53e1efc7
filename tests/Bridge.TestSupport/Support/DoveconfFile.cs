// Job: a Dovecot configuration file for `bridge check --dovecot-config` (read with doveconf, no Dovecot started):
// deploy/dovecot/10-bridge-spool.conf with the test's spool for /var/mail, then the given lines (later lines win).
// Failure: a missing deploy file fails the test.
namespace Bridge.Tests.Support;

public static class DoveconfFile
{
    public static string Write(TempDir dir, string spool, params string[] lines)
    {
        var snippet = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "deploy", "dovecot", "10-bridge-spool.conf"))
            .Replace("/var/mail/", spool.TrimEnd('/') + "/", StringComparison.Ordinal);
        var path = dir["dovecot.conf"];
        File.WriteAllText(path, "protocols = imap lmtp\n" + snippet + "\n" + string.Join('\n', lines) + "\n");
        return path;
    }
}
