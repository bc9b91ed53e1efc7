// Job: the <mailbox>.lock dotlock shared with Postfix, Dovecot, procmail and mutt: created with
// O_CREAT|O_EXCL|O_NOFOLLOW, holding "pid:hostname" (Dovecot's format). A lock whose owner process is dead
// (same host) or whose ctime is older than the stale limit is broken, as Postfix and Dovecot do.
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

    public Dotlock(string mailboxPath) => _path = mailboxPath + ".lock";

    public string Path => _path;

    public bool Held { get; private set; }

    /// <summary>Tries once (breaking a stale lock counts as part of the try). Sets errno on Failed.</summary>
    public DotlockResult TryAcquire(TimeSpan staleAfter, out int errno)
    {
        errno = 0;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var fd = Libc.Open(_path, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0x180 /* 0600 */);
            if (fd >= 0)
            {
                var content = Encoding.ASCII.GetBytes($"{Environment.ProcessId}:{HostName}");
                var writeError = Libc.WriteAll(fd, content);
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

    /// <summary>True when an existing lock was stale and has been removed.</summary>
    private bool TryBreakStale(TimeSpan staleAfter)
    {
        if (Libc.Lstat(_path, out var stat) != 0)
        {
            return Libc.LastError == Libc.ENOENT; // vanished meanwhile: try again
        }
        var age = DateTimeOffset.UtcNow - DateTimeOffset.FromUnixTimeSeconds(stat.ChangeTimeSeconds);
        var stale = age > staleAfter || OwnerIsDead();
        if (stale && Libc.Lstat(_path, out var again) == 0 && again.SameFileAs(stat))
        {
            Libc.Unlink(_path);
        }
        return stale;
    }

    private bool OwnerIsDead()
    {
        string content;
        try
        {
            using var stream = new FileStream(_path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var buffer = new byte[256];
            var n = stream.Read(buffer);
            content = Encoding.ASCII.GetString(buffer, 0, n).Trim();
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
        var parts = content.Split(':', 2);
        if (parts.Length == 2 && !string.Equals(parts[1], HostName, StringComparison.OrdinalIgnoreCase))
        {
            return false; // another host's process: its pid means nothing here
        }
        return int.TryParse(parts[0], out var pid) && pid > 0 && !Libc.ProcessExists(pid);
    }
}
