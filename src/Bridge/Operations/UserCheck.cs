// Job: the users part of `mailbridge check`: each configured user (Bridge:Users) has a system account (else the
// mailbox belongs to Bridge's own uid), short names written as addresses are at a local domain, and an existing
// mailbox has the owner, type and mode delivery accepts (MailboxSafety, the rules the appender applies).
// Failure: none thrown; every problem is a Finding with its fix.
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery.Spool;
using Bridge.Native;
using Bridge.Routing;

namespace Bridge.Operations;

internal static class UserCheck
{
    public static IEnumerable<Finding> Run(BridgeOptions options, SettingsSnapshot snapshot, IPasswdDatabase passwd)
    {
        foreach (var user in options.Users)
        {
            var first = user.ShortNames[0].ToLowerInvariant();
            var subject = $"user {first}";
            var account = passwd.Find(first);
            if (account is null)
            {
                yield return new Finding(Level.Warn, subject, $"no system account: its mailbox will belong to Bridge's own uid {Libc.Geteuid()}",
                    "make sure the mail store can read it, or create the account");
            }
            foreach (var name in user.ShortNames.Where(n => n.Contains('@', StringComparison.Ordinal)))
            {
                var domain = name[(name.IndexOf('@', StringComparison.Ordinal) + 1)..];
                if (!snapshot.Routing.Resolve(name[..name.IndexOf('@', StringComparison.Ordinal)], domain).IsAccepted)
                {
                    yield return new Finding(Level.Warn, subject, $"short name {name}: {domain} is not a local domain, so it never matches",
                        $"add {domain} to Bridge:LocalDomains");
                }
            }
            yield return CheckMailbox(Path.Combine(options.Spool.Directory, first), subject, new LocalUser(first, account?.Uid, account?.Gid, null).MailboxOwner,
                account is null ? null : first);
        }
    }

    /// <summary>Why delivery would refuse (450 4.2.0) an existing mailbox with this lstat, and the fix ("chown": give it
    /// to its user); null when it would write it. The same rules MailboxAppender applies when it opens the file.</summary>
    private static Finding CheckMailbox(string path, string subject, uint expectedUid, string? login)
    {
        if (Libc.Lstat(path, out var stat) != 0)
        {
            return new Finding(Level.Ok, subject, $"{path} does not exist yet (created 0600 on first delivery)");
        }
        if (MailboxSafety.Problem(stat, expectedUid) is { } problem)
        {
            return new Finding(Level.Fail, subject, $"{path} {problem.Text}: Bridge defers its mail", problem.Fix switch
            {
                "chown" => $"chown {login ?? expectedUid.ToString(System.Globalization.CultureInfo.InvariantCulture)} {path}",
                var fix => fix,
            });
        }
        if (MailboxSafety.OpenToOthers(stat))
        {
            return new Finding(Level.Warn, subject, $"{path} is readable by others (mode {Convert.ToString(stat.Permissions, 8)})", $"chmod 600 {path}");
        }
        return new Finding(Level.Ok, subject, $"{path}: owner, type and mode are right ({stat.Size} bytes)");
    }
}
