// Job: read a whole file whose name other users may influence (an alias file, an :include: list), the one safe way:
// open(2) with O_NOFOLLOW (a symbolic link is refused, never followed), O_NONBLOCK (a FIFO opens at once instead of
// waiting for a writer) and O_NOCTTY, with the rights of the account the caller names (ThreadIdentity) or Bridge's own;
// then fstat on the descriptor: only a regular file with one link and not larger than the caller's limit is read,
// and at most that many bytes are read even when the file grows meanwhile. ReadWithin bounds the time as well.
// Failure: never throws; every problem is a sentence about the file (its kind, mode, size, the errno), never a byte
// of what it holds.
namespace Bridge.Native;

/// <param name="Content">The bytes, or null when the file was refused (then <paramref name="Problem"/> says why).</param>
/// <param name="Stat">fstat of the opened file (default when it could not be opened).</param>
/// <param name="Hung">The file system did not answer in time (nothing about the file is known).</param>
internal readonly record struct UntrustedRead(byte[]? Content, FileStat Stat, string? Problem, bool Hung = false);

internal static class UntrustedFile
{
    /// <summary>How long ReadWithin waits for one file (a FUSE or NFS file system a user controls may never answer).</summary>
    public static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The most reads left hanging at once; beyond it ReadWithin refuses at once (no thread piles up).</summary>
    public const int MaxHanging = 8;

    private static int _hanging;

    /// <summary>How long StatWithin waits for one stat(2).</summary>
    public static readonly TimeSpan StatTimeout = TimeSpan.FromSeconds(1);

    /// <summary>A stat still waiting for its file system, per path: at most one is ever left hanging for a path.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Task<(int Result, int Errno, FileStat Stat)>> PendingStats = new(StringComparer.Ordinal);

    /// <summary>stat(2) of <paramref name="path"/> (links followed), waited for at most StatTimeout: null when the file
    /// system did not answer (a stat of the same path still hanging from before is waited for instead of another).</summary>
    public static (int Result, int Errno, FileStat Stat)? StatWithin(string path)
    {
        var pending = PendingStats.GetOrAdd(path, p => Task.Factory.StartNew(() =>
        {
            var result = Libc.Stat(p, out var stat);
            return (result, result == 0 ? 0 : Libc.LastError, stat);
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default));
        if (!pending.Wait(StatTimeout))
        {
            return null; // stays pending: the next look at this path waits for the same stat
        }
        PendingStats.TryRemove(new KeyValuePair<string, Task<(int, int, FileStat)>>(path, pending));
        return pending.Result;
    }

    /// <summary>Read, on a thread of its own, waited for at most ReadTimeout: an open or read that hangs is left behind (its
    /// thread ends when the file system answers) and the file is refused; at most MaxHanging are left at once.</summary>
    /// <param name="followLink">The administrator named this file (Bridge:AliasFiles): a link is followed, and the
    /// limit of hanging reads (which users' files use up) never refuses it.</param>
    public static UntrustedRead ReadWithin(string path, AccountRights? rights, long maxBytes, string limitName, bool followLink = false)
    {
        if (!followLink && Volatile.Read(ref _hanging) >= MaxHanging)
        {
            return new UntrustedRead(null, default, $"is not read: {MaxHanging} earlier reads still hang (a file system that does not answer)", Hung: true);
        }
        UntrustedRead result = default;
        using var done = new ManualResetEventSlim();
        var abandoned = 0;
        var thread = new Thread(() =>
        {
            var read = Read(path, rights, maxBytes, limitName, followLink);
            if (Interlocked.Exchange(ref abandoned, 2) == 1)
            {
                Interlocked.Decrement(ref _hanging); // answered at last, long after it was given up
                return;
            }
            result = read;
            done.Set();
        })
        { IsBackground = true, Name = "bridge-untrusted-read" };
        thread.Start();
        if (done.Wait(ReadTimeout) || Interlocked.CompareExchange(ref abandoned, 1, 0) == 2)
        {
            done.Wait(); // finished (perhaps just now)
            return result;
        }
        Interlocked.Increment(ref _hanging);
        return new UntrustedRead(null, default, $"did not answer within {ReadTimeout.TotalSeconds:0} s (a file system that hangs?)", Hung: true);
    }

    private static int Flags => Libc.O_RDONLY | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_NOCTTY | Libc.O_CLOEXEC;

    /// <param name="rights">Whose rights open it (null: Bridge's own).</param>
    /// <param name="maxBytes">The most that is read; a larger file is refused.</param>
    /// <param name="limitName">The setting the limit comes from, named in the refusal.</param>
    public static UntrustedRead Read(string path, AccountRights? rights, long maxBytes, string limitName, bool followLink = false)
    {
        var flags = followLink ? Flags & ~Libc.O_NOFOLLOW : Flags;
        var errno = 0;
        var fd = rights is null ? Libc.Open(path, flags, 0) : ThreadIdentity.OpenAs(path, flags, rights, out errno);
        if (fd < 0)
        {
            errno = rights is null ? Libc.LastError : errno;
            var whose = rights is null ? "" : $" with the rights of {rights}";
            return new UntrustedRead(null, default, errno switch
            {
                Libc.ELOOP => "is a symbolic link (never followed)",
                ThreadIdentity.CannotTakeRights => $"cannot be opened{whose}: Bridge lacks CAP_SETUID and CAP_SETGID, which taking them needs",
                _ => $"cannot be opened{whose}: {Libc.Describe(errno)}",
            });
        }
        try
        {
            if (Libc.Fstat(fd, out var stat) != 0)
            {
                return new UntrustedRead(null, default, $"cannot be examined: {Libc.Describe(Libc.LastError)}");
            }
            if (!stat.IsRegularFile)
            {
                return new UntrustedRead(null, stat, $"is {stat.KindName}, not a regular file");
            }
            if (stat.Links != 1)
            {
                return new UntrustedRead(null, stat, $"has {stat.Links} hard links");
            }
            if (stat.Size > maxBytes)
            {
                return new UntrustedRead(null, stat, $"is {stat.Size} bytes, more than {limitName} ({maxBytes})");
            }
            var content = new byte[(int)Math.Min(stat.Size + 1, maxBytes + 1)];
            var got = 0;
            while (got < content.Length)
            {
                var n = Libc.ReadAt(fd, content.AsSpan(got), got);
                if (n < 0)
                {
                    return new UntrustedRead(null, stat, $"cannot be read: {Libc.Describe(Libc.LastError)}");
                }
                if (n == 0)
                {
                    break;
                }
                got += n;
                if (got == content.Length && got <= maxBytes)
                {
                    Array.Resize(ref content, (int)Math.Min(maxBytes + 1, (long)content.Length * 2)); // it grew while read
                }
            }
            if (got > maxBytes)
            {
                return new UntrustedRead(null, stat, $"grew past {limitName} ({maxBytes} bytes) while it was read");
            }
            return new UntrustedRead(content[..got], stat, null);
        }
        finally
        {
            Libc.Close(fd);
        }
    }
}
