// Job: the sockets part of `mailbridge check` (Bridge:Lmtp:Socket; Bridge:Collect:Socket for Dovecot's logins): the socket
// exists and is a socket (Bridge creates it at start), has the configured mode and group, who besides root can write
// its directory, and each user that connects to it (Postfix's mail_owner, Exim's Debian-exim; dovecot) may connect:
// search permission on every directory above it and write permission on the socket, by owner, group membership or
// others, as the kernel decides it.
// Failure: none thrown; every problem is a Finding with its fix.
using Bridge.Configuration;
using Bridge.Native;

namespace Bridge.Operations;

internal static class LmtpSocketCheck
{
    private const uint Write = 0x2, Search = 0x1;

    public static IEnumerable<Finding> Run(LmtpOptions lmtp, IReadOnlyList<string> mtaUsers)
    {
        if (lmtp.Socket.Length == 0)
        {
            yield break;
        }
        var subject = $"lmtp {lmtp.Socket}";
        if (Libc.Lstat(lmtp.Socket, out var stat) != 0)
        {
            yield return new Finding(Level.Fail, subject, $"does not exist: Bridge creates it at start ({Libc.Describe(Libc.LastError)})",
                "start Bridge (systemctl start bridge) and read its log if it still does not appear");
            yield break;
        }
        if (!stat.IsSocket)
        {
            yield return new Finding(Level.Fail, subject, "is not a socket: Bridge refuses to start with it there", "move it away, or set Bridge:Lmtp:Socket");
            yield break;
        }
        yield return DirectoryWriters(lmtp.Socket);
        _ = BridgeOptionsValidator.TryParseMode(lmtp.SocketMode, out var mode);
        var gid = Libc.GetGroupId(lmtp.SocketGroup);
        yield return stat.Permissions == (uint)mode && stat.Gid == gid
            ? new Finding(Level.Ok, subject, $"a socket with mode {Convert.ToString(stat.Permissions, 8)} and group {lmtp.SocketGroup}")
            : new Finding(Level.Warn, subject,
                $"mode {Convert.ToString(stat.Permissions, 8)} gid {stat.Gid}, not Bridge:Lmtp:SocketMode {lmtp.SocketMode} and SocketGroup {lmtp.SocketGroup} (gid {gid})",
                "restart Bridge: it sets them when it creates the socket");
        foreach (var user in mtaUsers)
        {
            if (Libc.GetPasswdEntry(user) is not { } account)
            {
                continue;
            }
            var groups = Libc.GetGroupList(user, account.Gid);
            var blocked = Blocker(lmtp.Socket, account.Uid, groups);
            yield return blocked is null
                ? new Finding(Level.Ok, subject, $"{user} (the MTA's delivery agent) may connect")
                : new Finding(Level.Fail, subject, $"{user} (the MTA's delivery agent) cannot connect: {blocked}",
                    $"set Bridge:Lmtp:SocketGroup to a group of {user} (e.g. {user}), or Bridge:Lmtp:SocketMode 0666");
        }
    }

    /// <summary>Bridge:Collect:Socket, when some user's mail goes to the store: it exists while the daemon runs, and
    /// Dovecot's post-login service (user dovecot in 30-bridge-collect.conf) may connect.</summary>
    public static IEnumerable<Finding> RunCollect(BridgeOptions options)
    {
        var socket = options.Collect.Socket;
        if (socket.Length == 0 || !options.UsesStore)
        {
            yield break;
        }
        var subject = $"collect {socket}";
        if (Libc.Lstat(socket, out var stat) != 0 || !stat.IsSocket)
        {
            yield return new Finding(Level.Warn, subject, "no socket there: logins collect nothing while Bridge is not running (the daemon makes it at start)",
                "start Bridge; read its log if the socket still does not appear");
            yield break;
        }
        yield return DirectoryWriters(socket);
        if (Libc.GetPasswdEntry("dovecot") is { } dovecot)
        {
            var blocked = Blocker(socket, dovecot.Uid, Libc.GetGroupList("dovecot", dovecot.Gid));
            yield return blocked is null
                ? new Finding(Level.Ok, subject, "dovecot (the post-login service's user) may connect")
                : new Finding(Level.Fail, subject, $"dovecot (the post-login service's user) cannot connect: {blocked}",
                    "set Bridge:Collect:SocketGroup to dovecot, or run the post-login service as root");
        }
    }

    /// <summary>Who besides root can write the socket's directory: they can remove or replace the socket (Bridge makes
    /// it so that they can never steer what Bridge changes); WARN when that is every local user.</summary>
    internal static Finding DirectoryWriters(string socket)
    {
        var directory = Path.GetDirectoryName(socket) ?? "/";
        var subject = $"lmtp {socket}";
        if (Libc.Stat(directory, out var dir) != 0)
        {
            return new Finding(Level.Fail, subject, $"its directory {directory} cannot be examined: {Libc.Describe(Libc.LastError)}", "create it");
        }
        var writers = new List<string>();
        if (dir.Uid != 0 && (dir.Permissions & 0x80) != 0)
        {
            writers.Add($"{Libc.GetPasswdByUid(dir.Uid)?.Login ?? $"uid {dir.Uid}"} (its owner)");
        }
        if ((dir.Permissions & 0x10) != 0 && Libc.GetGroupById(dir.Gid) is { } group)
        {
            writers.Add($"the members of group {group.Name}{(group.Members.Count > 0 ? $" ({string.Join(", ", group.Members)})" : "")}");
        }
        else if ((dir.Permissions & 0x10) != 0)
        {
            writers.Add($"the members of gid {dir.Gid}");
        }
        var everyone = (dir.Permissions & 0x2) != 0;
        if (everyone)
        {
            writers.Add((dir.Permissions & 0x200) != 0 ? "every local user (sticky: they cannot remove Bridge's socket)" : "every local user");
        }
        if (writers.Count == 0)
        {
            return new Finding(Level.Ok, subject, $"only root can write its directory {directory}");
        }
        var text = $"its directory {directory} can be written by {string.Join(", ", writers)} besides root: they can remove or replace the socket, never make Bridge change another file";
        return everyone && (dir.Permissions & 0x200) == 0
            ? new Finding(Level.Warn, subject, text, $"put the socket in a directory that only root and the MTA can write (chmod o-w {directory})")
            : new Finding(Level.Ok, subject, text);
    }

    /// <summary>Why <paramref name="uid"/> cannot connect to the socket (a directory it cannot search, a socket it
    /// cannot write), or null when it can.</summary>
    internal static string? Blocker(string socket, uint uid, IReadOnlyList<uint> groups)
    {
        if (uid == 0)
        {
            return null;
        }
        for (var directory = Path.GetDirectoryName(socket); !string.IsNullOrEmpty(directory); directory = Path.GetDirectoryName(directory))
        {
            if (Libc.Lstat(directory, out var dir) == 0 && !Allows(dir, uid, groups, Search))
            {
                return $"it may not enter {directory} (mode {Convert.ToString(dir.Permissions, 8)}, uid {dir.Uid}, gid {dir.Gid})";
            }
        }
        return Libc.Lstat(socket, out var stat) == 0 && !Allows(stat, uid, groups, Write)
            ? $"it may not write the socket (mode {Convert.ToString(stat.Permissions, 8)}, uid {stat.Uid}, gid {stat.Gid})"
            : null;
    }

    private static bool Allows(FileStat stat, uint uid, IReadOnlyList<uint> groups, uint bit) =>
        stat.Uid == uid ? (stat.Permissions & (bit << 6)) != 0
        : groups.Contains(stat.Gid) ? (stat.Permissions & (bit << 3)) != 0
        : (stat.Permissions & bit) != 0;
}
