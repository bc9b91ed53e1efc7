// Job: put a listening Unix socket at a path in a directory that other users may be able to write (Postfix's private/
// belongs to postfix), so that nothing done to the socket can be steered to another file: the socket is bound inside
// a fresh directory that only Bridge can enter (created in the target's own directory, reached through its descriptor
// as /proc/self/fd/N, so renaming it away changes nothing), given its group and mode there, and then renamed over the
// final name (rename replaces a link at that name, it never follows it); lstat then confirms that the name is this
// socket. A socket already at the path is replaced only when nothing listens on it (connect is refused); one that
// accepts a connection belongs to a running program and stops the start. Removal at stop unlinks the name only while
// it is still this socket.
// Whoever can write the directory can at most remove or replace the socket afterwards, never make Bridge change
// another file.
// Failure: Bind returns the sentence to print (naming the path; the caller adds the setting) and leaves nothing behind.
using System.Net.Sockets;

namespace Bridge.Native;

/// <summary>A socket file Bridge made: removed at stop only while the name is still this inode.</summary>
internal sealed record OwnedSocketFile(string Path, ulong Device, ulong Inode)
{
    public void RemoveIfOurs()
    {
        if (Libc.Lstat(Path, out var now) == 0 && now.Device == Device && now.Inode == Inode)
        {
            Libc.Unlink(Path);
        }
    }
}

internal static class UnixSocketFile
{
    private const uint PrivateDirectoryMode = 0x1C0; // 0700

    /// <summary>Binds <paramref name="socket"/> (not yet listening) at <paramref name="path"/> with
    /// <paramref name="mode"/> and group <paramref name="gid"/>, then listens.</summary>
    /// <param name="inUse">True when the refusal is a socket another program listens on.</param>
    public static OwnedSocketFile? Bind(Socket socket, string path, uint mode, uint gid, int backlog, out string? problem, out bool inUse)
    {
        inUse = false;
        var parent = System.IO.Path.GetDirectoryName(path);
        var name = System.IO.Path.GetFileName(path);
        if (string.IsNullOrEmpty(parent) || name.Length == 0)
        {
            problem = $"{path} is not a path of a file in a directory";
            return null;
        }
        var parentFd = Libc.Open(parent, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        if (parentFd < 0)
        {
            problem = $"cannot open its directory {parent}: {Libc.Describe(Libc.LastError)}";
            return null;
        }
        try
        {
            if (Libc.FstatAt(parentFd, name, out var existing, Libc.AT_SYMLINK_NOFOLLOW) == 0)
            {
                if (!existing.IsSocket)
                {
                    problem = $"it exists and is not a socket but {existing.KindName}; move it away";
                    return null;
                }
                if (Listening(path))
                {
                    inUse = true;
                    problem = $"another program listens on the socket {path} (a second Bridge?); stop it, or give this one another path";
                    return null;
                }
                // a stale socket of an earlier run: the rename below replaces it
            }
            return BindAside(socket, parentFd, parent, name, mode, gid, backlog, out problem);
        }
        finally
        {
            Libc.Close(parentFd);
        }
    }

    /// <summary>Whether a program accepts connections on the socket at <paramref name="path"/> (refused: a stale one).</summary>
    public static bool Listening(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { Blocking = false };
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException ex)
        {
            // EAGAIN: a listener whose backlog is full (never waited for); ECONNREFUSED: nobody listens; ENOENT: gone.
            return ex.SocketErrorCode is SocketError.WouldBlock or SocketError.TryAgain or SocketError.InProgress;
        }
    }

    private static OwnedSocketFile? BindAside(Socket socket, int parentFd, string parent, string name, uint mode, uint gid, int backlog, out string? problem)
    {
        var aside = $".{name}.bridge-{Environment.ProcessId}-{Random.Shared.Next():x8}";
        if (Libc.MkdirAt(parentFd, aside, PrivateDirectoryMode) != 0)
        {
            problem = $"cannot create a directory in {parent}: {Libc.Describe(Libc.LastError)}";
            return null;
        }
        var asideFd = Libc.OpenAt(parentFd, aside, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
        var placed = false;
        try
        {
            if (asideFd < 0 || Libc.Fstat(asideFd, out var directory) != 0 || !directory.IsDirectory ||
                directory.Uid != Libc.Geteuid() || (directory.Permissions & 0x3F) != 0)
            {
                problem = $"the directory Bridge made in {parent} was replaced at once; someone who can write {parent} interferes";
                return null;
            }
            try
            {
                socket.Bind(new UnixDomainSocketEndPoint($"/proc/self/fd/{asideFd}/s"));
            }
            catch (SocketException ex)
            {
                problem = ex.SocketErrorCode == SocketError.AccessDenied ? $"permission denied: Bridge may not create files in {parent}" : ex.Message;
                return null;
            }
            if (Libc.FchownAt(asideFd, "s", uint.MaxValue, gid, Libc.AT_SYMLINK_NOFOLLOW) != 0 ||
                Libc.FchmodAt(asideFd, "s", mode, 0) != 0 ||
                Libc.FstatAt(asideFd, "s", out var made, Libc.AT_SYMLINK_NOFOLLOW) != 0)
            {
                problem = $"cannot give the socket group {gid} and mode {Convert.ToString(mode, 8)}: {Libc.Describe(Libc.LastError)}";
                return null;
            }
            try
            {
                socket.Listen(backlog);
            }
            catch (SocketException ex)
            {
                problem = $"cannot listen on the socket: {ex.Message}";
                return null;
            }
            if (Libc.RenameAt(asideFd, "s", parentFd, name) != 0)
            {
                problem = $"cannot move the socket to {System.IO.Path.Combine(parent, name)}: {Libc.Describe(Libc.LastError)}";
                return null;
            }
            placed = true;
            if (Libc.FstatAt(parentFd, name, out var named, Libc.AT_SYMLINK_NOFOLLOW) != 0 || !named.IsSocket || !named.SameFileAs(made))
            {
                problem = $"the socket at {System.IO.Path.Combine(parent, name)} was replaced at once; someone who can write {parent} interferes";
                return null;
            }
            problem = null;
            return new OwnedSocketFile(System.IO.Path.Combine(parent, name), made.Device, made.Inode);
        }
        finally
        {
            if (!placed && asideFd >= 0)
            {
                Libc.UnlinkAt(asideFd, "s", 0);
            }
            // Remove the directory only while the name is still the one Bridge made (it may have been renamed away).
            if (asideFd >= 0 && Libc.Fstat(asideFd, out var ours) == 0 &&
                Libc.FstatAt(parentFd, aside, out var there, Libc.AT_SYMLINK_NOFOLLOW) == 0 && there.SameFileAs(ours))
            {
                Libc.UnlinkAt(parentFd, aside, Libc.AT_REMOVEDIR);
            }
            if (asideFd >= 0)
            {
                Libc.Close(asideFd);
            }
        }
    }
}
