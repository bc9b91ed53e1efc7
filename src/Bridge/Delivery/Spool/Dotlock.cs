// Job: the <mailbox>.lock dotlock shared with Postfix, Dovecot, procmail and mutt: created with
// O_CREAT|O_EXCL|O_NOFOLLOW, holding "pid:hostname" (Dovecot's format; empty, as Postfix's, when it replaces a stale
// lock on a file system with no room for those bytes: then only its age makes it stale). A lock whose owner process is dead
// (same host) or whose ctime is older than the stale limit is broken, as Postfix and Dovecot do. Something at the
// lock path that is not a regular file (a FIFO or symlink any local user can make in a 1777 spool) is no lock, nor is a
// lock file of another user than the mailbox's owner, root or Bridge (mail programs lock with the owner's rights):
// either is removed (and reported in Note), the former never opened, so neither can hold a delivery back. Nothing here ever blocks:
// every open is O_NONBLOCK|O_NOFOLLOW.
// Failure: Busy (someone holds it), or Failed with the errno (e.g. EACCES: the spool directory does not let
// Bridge create files -> the caller defers and the log names the permission problem).
using System.Text;
using Bridge.Native;

namespace Bridge.Delivery.Spool;

internal enum DotlockResult
{
    Acquired,
    Busy,
    Failed,
}

internal sealed class Dotlock
{
    private static readonly string HostName = Environment.MachineName;

    private readonly string _path;
    private FileStat _created;
    private uint? _mailboxOwner;

    public Dotlock(string mailboxPath) => _path = mailboxPath + ".lock";

    public string Path => _path;

    public bool Held { get; private set; }

    /// <summary>Set when something that was not a lock had to be removed from the lock path (for the log).</summary>
    public string? Note { get; private set; }

    /// <summary>Tries once (breaking a stale lock counts as part of the try). Sets errno on Failed.</summary>
    /// <param name="mailboxOwner">The mailbox's owner: a lock of anyone else's but root's and Bridge's is no lock a mail
    /// program took for this mailbox (they take it with the mailbox owner's rights, or root's), but another user's
    /// attempt to hold the mailbox's mail back in a 1777 spool; it is removed.</param>
    public DotlockResult TryAcquire(TimeSpan staleAfter, out int errno, uint? mailboxOwner = null)
    {
        _mailboxOwner = mailboxOwner;
        errno = 0;
        var brokeStale = false;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var fd = Libc.Open(_path, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0x180 /* 0600 */);
            if (fd >= 0)
            {
                var content = Encoding.ASCII.GetBytes($"{Environment.ProcessId}:{HostName}");
                var writeError = Libc.WriteAll(fd, content);
                if (brokeStale && writeError is Libc.ENOSPC or Libc.EDQUOT && Libc.Ftruncate(fd, 0) == 0)
                {
                    // This try broke a stale lock (perhaps of a Bridge killed mid-append, whose entry must be settled
                    // before any reader rewrites the file) and a full file system has room for the new lock's name
                    // but not for its pid: giving the lock up would leave the mailbox unlocked where the stale lock
                    // had kept it locked. An empty lock is still a lock (Postfix's are empty); only its age makes it
                    // stale. Without a stale lock broken, a full disk fails the lock as before (452: the append
                    // would fail anyway), so an empty lock a crash leaves behind stays this rare.
                    writeError = 0;
                }
                Libc.Fstat(fd, out _created);
                Libc.Close(fd);
                if (writeError != 0)
                {
                    Libc.Unlink(_path);
                    errno = writeError;
                    return DotlockResult.Failed;
                }
                Held = true;
                return DotlockResult.Acquired;
            }
            errno = Libc.LastError;
            if (errno != Libc.EEXIST)
            {
                return DotlockResult.Failed;
            }
            if (!TryBreakStale(staleAfter))
            {
                return DotlockResult.Busy;
            }
            brokeStale = true;
        }
        return DotlockResult.Busy;
    }

    public void Release()
    {
        if (!Held)
        {
            return;
        }
        Held = false;
        // Remove only our own lock: if it was broken as stale and someone else took it, leave theirs.
        if (Libc.Lstat(_path, out var now) == 0 && now.SameFileAs(_created))
        {
            Libc.Unlink(_path);
        }
    }

    /// <summary>True when an existing lock was stale (or no lock at all) and has been removed.</summary>
    private bool TryBreakStale(TimeSpan staleAfter)
    {
        if (Libc.Lstat(_path, out var stat) != 0)
        {
            return Libc.LastError == Libc.ENOENT; // vanished meanwhile: try again
        }
        if (!stat.IsRegularFile)
        {
            // A FIFO, socket, device, symlink or directory named like the lock: no mail program makes one. Opening a
            // FIFO would block; waiting for it would let anyone who can write the spool stop this mailbox's mail.
            var removed = Libc.Unlink(_path) == 0 || Libc.LastError == Libc.ENOENT;
            Note = removed
                ? $"removed {_path}: it was not a dotlock but a {Kind(stat.Mode)} (uid {stat.Uid})"
                : $"{_path} is a {Kind(stat.Mode)} (uid {stat.Uid}), not a dotlock, and cannot be removed: {Libc.Describe(Libc.LastError)}";
            return removed;
        }
        if (_mailboxOwner is { } owner && stat.Uid != owner && stat.Uid != 0 && stat.Uid != Libc.Geteuid())
        {
            var removedForeign = Libc.Lstat(_path, out var same) == 0 && same.SameFileAs(stat) && Libc.Unlink(_path) == 0;
            Note = removedForeign
                ? $"removed {_path}: a dotlock of uid {stat.Uid}, who neither owns the mailbox (uid {owner}) nor is root or Bridge"
                : $"{_path} is a dotlock of uid {stat.Uid}, not of the mailbox's owner (uid {owner}), and cannot be removed: {Libc.Describe(Libc.LastError)}";
            return removedForeign;
        }
        var age = DateTimeOffset.UtcNow - DateTimeOffset.FromUnixTimeSeconds(stat.ChangeTimeSeconds);
        var stale = age > staleAfter || OwnerIsDead();
        if (stale && Libc.Lstat(_path, out var again) == 0 && again.SameFileAs(stat))
        {
            Libc.Unlink(_path);
        }
        return stale;
    }

    private static string Kind(uint mode) => (mode & Libc.S_IFMT) switch
    {
        0x1000 => "FIFO",
        0xA000 => "symbolic link",
        0x4000 => "directory",
        0xC000 => "socket",
        0x2000 or 0x6000 => "device",
        _ => "special file",
    };

    private bool OwnerIsDead()
    {
        var fd = Libc.Open(_path, Libc.O_RDONLY | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_NOCTTY | Libc.O_CLOEXEC, 0);
        if (fd < 0)
        {
            return false;
        }
        string content;
        try
        {
            if (Libc.Fstat(fd, out var opened) != 0 || !opened.IsRegularFile)
            {
                return false; // replaced meanwhile: decided on the next try
            }
            Span<byte> buffer = stackalloc byte[256];
            var n = Libc.ReadAt(fd, buffer, 0);
            if (n <= 0)
            {
                return false;
            }
            content = Encoding.ASCII.GetString(buffer[..n]).Trim();
        }
        finally
        {
            Libc.Close(fd);
        }
        var parts = content.Split(':', 2);
        if (parts.Length == 2 && !string.Equals(parts[1], HostName, StringComparison.OrdinalIgnoreCase))
        {
            return false; // another host's process: its pid means nothing here
        }
        return int.TryParse(parts[0], out var pid) && pid > 0 && !Libc.ProcessExists(pid);
    }
}
