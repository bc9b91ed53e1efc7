// Job: the spool directory part of `mailbridge check` (the seed's "most likely a permissions problem"): it exists, is a
// directory every mailbox owner's mail reader can enter, has a mode that lets readers make dotlocks (1777, or 2775 of
// the mail group), and Bridge itself can create files in it.
// Failure: none thrown; every problem is a Finding with its fix.
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery.Spool;
using Bridge.Native;
using Bridge.Routing;

namespace Bridge.Operations;

internal static class SpoolCheck
{
    public static IEnumerable<Finding> Run(BridgeOptions options, IPasswdDatabase passwd)
    {
        return CheckSpoolDirectory(options.Spool, MailboxOwners(options, passwd));
    }

    private static IEnumerable<Finding> CheckSpoolDirectory(SpoolOptions spool, IReadOnlyList<(string Name, uint Uid, uint Gid)> owners)
    {
        var subject = $"spool {spool.Directory}";
        if (Libc.Lstat(spool.Directory, out var stat) != 0)
        {
            yield return new Finding(Level.Fail, subject, "does not exist", $"mkdir -m 1777 {spool.Directory}");
            yield break;
        }
        const uint directory = 0x4000;
        if ((stat.Mode & Libc.S_IFMT) != directory)
        {
            yield return new Finding(Level.Fail, subject, "is not a directory", "set Bridge:Spool:Directory");
            yield break;
        }
        var mode = stat.Permissions;
        // A user who cannot search the directory cannot open a mailbox in it at all: the reader fails, whatever the
        // mailbox's own mode (the seed's "most likely a permissions problem").
        var locked = owners.Where(o => !CanSearch(stat, o.Uid, o.Gid)).Select(o => o.Name).ToList();
        if (locked.Count > 0)
        {
            yield return new Finding(Level.Fail, subject,
                $"mode {Convert.ToString(mode, 8)} (owner uid {stat.Uid}, gid {stat.Gid}): {string.Join(", ", locked)} cannot enter it, so their mail readers cannot open their mailboxes",
                $"chmod 1777 {spool.Directory} (or chown root:{spool.MailGroup} and chmod 2775)");
        }
        var mailGid = Libc.GetGroupId(spool.MailGroup);
        if (locked.Count > 0)
        {
            yield return WritableDirectoryCheck.Run("dotlocks", spool.Directory, "Bridge:Spool:Directory");
            yield break; // the same fix makes dotlocks possible too: one line for it is enough
        }
        var sticky1777 = mode == Convert.ToUInt32("1777", 8);
        var setgidMail = mode == Convert.ToUInt32("2775", 8) && stat.Gid == mailGid;
        yield return sticky1777 || setgidMail
            ? new Finding(Level.Ok, subject, $"mode {Convert.ToString(mode, 8)}{(setgidMail ? $" group {spool.MailGroup}" : "")}")
            : new Finding(Level.Warn, subject, $"mode {Convert.ToString(mode, 8)} (owner uid {stat.Uid}, gid {stat.Gid}): mail readers may be unable to create dotlocks",
                $"chmod 1777 {spool.Directory} (or chown root:{spool.MailGroup} and chmod 2775)");
        yield return WritableDirectoryCheck.Run("dotlocks", spool.Directory, "Bridge:Spool:Directory");
    }

    /// <summary>The execute (search) bit that applies to a user with this uid and primary gid (root always may).</summary>
    private static bool CanSearch(FileStat directory, uint uid, uint gid)
    {
        var bits = directory.Permissions;
        return uid == 0 || (directory.Uid == uid ? (bits & 0x40) != 0 : directory.Gid == gid ? (bits & 0x8) != 0 : (bits & 0x1) != 0);
    }

    /// <summary>Whose mail readers open mailboxes in the spool: configured users with a system account, and the
    /// owners of the files already there.</summary>
    private static IReadOnlyList<(string Name, uint Uid, uint Gid)> MailboxOwners(BridgeOptions options, IPasswdDatabase passwd)
    {
        var owners = new Dictionary<uint, (string Name, uint Uid, uint Gid)>();
        foreach (var first in options.Users.Select(u => u.ShortNames[0].ToLowerInvariant()))
        {
            if (passwd.Find(first) is { } account)
            {
                owners.TryAdd(account.Uid, (first, account.Uid, account.Gid));
            }
        }
        try
        {
            foreach (var file in Directory.EnumerateFiles(options.Spool.Directory))
            {
                var name = Path.GetFileName(file);
                if (ShortName.IsSafeFileName(name) && Libc.Lstat(file, out var stat) == 0 && stat.IsRegularFile && passwd.Find(name) is { } account)
                {
                    owners.TryAdd(account.Uid, (name, account.Uid, account.Gid));
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Bridge itself cannot list it: the dotlock check below says so
        }
        return [.. owners.Values.OrderBy(o => o.Name, StringComparer.Ordinal)];
    }
}
