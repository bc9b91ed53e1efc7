// Job: thin P/Invoke surface over the libc calls a trusted mail delivery agent needs (open with O_NOFOLLOW,
// fstat/lstat, OFD fcntl locks, write, fsync, ftruncate, fchown, kill, passwd/group lookups).
// Failure: every call returns -1 (or an errno) and leaves the errno in Marshal.GetLastPInvokeError();
// callers turn that into a DeliveryStatus. Linux x86_64 and arm64 only (checked by Libc.EnsureSupported).
using System.Runtime.InteropServices;

namespace Bridge.Native;

internal static unsafe partial class Libc
{
    private const string Lib = "libc";

    public const int EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, EAGAIN = 11, ENOMEM = 12, EACCES = 13,
        EEXIST = 17, ENOTDIR = 20, EISDIR = 21, ENFILE = 23, EMFILE = 24, EFBIG = 27, ENOSPC = 28, EROFS = 30, ELOOP = 40, EDQUOT = 122;

    public const int O_DIRECTORY = 0x10000, AT_SYMLINK_NOFOLLOW = 0x100, AT_REMOVEDIR = 0x200;

    public const int O_RDONLY = 0x0, O_WRONLY = 0x1, O_RDWR = 0x2, O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100,
        O_TRUNC = 0x200, O_APPEND = 0x400, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;

    /// <summary>O_NOFOLLOW differs between x86_64 (0400000) and the generic arm64 ABI (0100000).</summary>
    public static readonly int O_NOFOLLOW =
        RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x8000 : 0x20000;

    public const int S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFLNK = 0xA000, S_IFSOCK = 0xC000;

    private const int F_OFD_SETLK = 37;
    private const short F_WRLCK = 1, F_UNLCK = 2;

    public static void EnsureSupported()
    {
        if (!OperatingSystem.IsLinux() ||
            RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.Arm64))
        {
            throw new PlatformNotSupportedException("Bridge spool delivery needs Linux on x86_64 or arm64.");
        }
    }

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, uint mode);

    /// <summary>open(2) of a NUL-terminated path already in unmanaged memory (ThreadIdentity: nothing allocates while
    /// another account's rights are in force).</summary>
    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true)]
    public static partial int OpenRaw(byte* path, int flags, uint mode);

    [LibraryImport(Lib, EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int OpenAt(int directory, string name, int flags, uint mode);

    [LibraryImport(Lib, EntryPoint = "mkdirat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MkdirAt(int directory, string name, uint mode);

    [LibraryImport(Lib, EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int UnlinkAt(int directory, string name, int flags);

    [LibraryImport(Lib, EntryPoint = "renameat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RenameAt(int fromDirectory, string from, int toDirectory, string to);

    /// <summary>Owner and group of a name in a directory; with AT_SYMLINK_NOFOLLOW a link itself, never its target.</summary>
    [LibraryImport(Lib, EntryPoint = "fchownat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int FchownAt(int directory, string name, uint uid, uint gid, int flags);

    [LibraryImport(Lib, EntryPoint = "fchmodat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int FchmodAt(int directory, string name, uint mode, int flags);

    [LibraryImport(Lib, EntryPoint = "fstatat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int FstatAtRaw(int directory, string name, byte* buffer, int flags);

    public static int FstatAt(int directory, string name, out FileStat stat, int flags)
    {
        var buffer = stackalloc byte[256];
        var rc = FstatAtRaw(directory, name, buffer, flags);
        stat = rc == 0 ? FileStat.Parse(buffer) : default;
        return rc;
    }

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)]
    private static partial nint Write(int fd, byte* buffer, nint count);

    [LibraryImport(Lib, EntryPoint = "pread", SetLastError = true)]
    private static partial nint Pread(int fd, byte* buffer, nint count, long offset);

    [LibraryImport(Lib, EntryPoint = "pwrite", SetLastError = true)]
    private static partial nint Pwrite(int fd, byte* buffer, nint count, long offset);

    [LibraryImport(Lib, EntryPoint = "fsync", SetLastError = true)]
    public static partial int Fsync(int fd);

    [LibraryImport(Lib, EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int Ftruncate(int fd, long length);

    [LibraryImport(Lib, EntryPoint = "fchown", SetLastError = true)]
    public static partial int Fchown(int fd, uint uid, uint gid);

    /// <summary>Owner and group of a path itself (a symbolic link is not followed).</summary>
    [LibraryImport(Lib, EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Lchown(string path, uint uid, uint gid);

    [LibraryImport(Lib, EntryPoint = "chmod", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Chmod(string path, uint mode);

    [LibraryImport(Lib, EntryPoint = "rename", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Rename(string from, string to);

    [LibraryImport(Lib, EntryPoint = "fchmod", SetLastError = true)]
    public static partial int Fchmod(int fd, uint mode);

    [LibraryImport(Lib, EntryPoint = "unlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Unlink(string path);

    [LibraryImport(Lib, EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport(Lib, EntryPoint = "geteuid")]
    public static partial uint Geteuid();

    [LibraryImport(Lib, EntryPoint = "getegid")]
    public static partial uint Getegid();

    [LibraryImport(Lib, EntryPoint = "signal")]
    private static partial nint Signal(int signum, nint handler);

    [LibraryImport(Lib, EntryPoint = "fstat", SetLastError = true)]
    private static partial int FstatRaw(int fd, byte* buffer);

    [LibraryImport(Lib, EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LstatRaw(string path, byte* buffer);

    [LibraryImport(Lib, EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatRaw(string path, byte* buffer);

    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    private static partial int FcntlLock(int fd, int cmd, FlockStruct* lockInfo);

    [LibraryImport(Lib, EntryPoint = "getpwnam_r", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int GetpwnamR(string name, byte* pwd, byte* buffer, nint bufferLength, byte** result);

    [LibraryImport(Lib, EntryPoint = "getgrnam_r", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int GetgrnamR(string name, byte* grp, byte* buffer, nint bufferLength, byte** result);

    public static int LastError => Marshal.GetLastPInvokeError();

    /// <summary>An errno as people read it: "No space left on device (errno 28)".</summary>
    public static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";

    /// <summary>A file larger than RLIMIT_FSIZE must fail with EFBIG, not kill the daemon with SIGXFSZ.</summary>
    public static void IgnoreFileSizeSignal()
    {
        const int SIGXFSZ = 25;
        _ = Signal(SIGXFSZ, 1 /* SIG_IGN */);
    }

    /// <summary>Writes all bytes, retrying short writes and EINTR. Returns 0 or the errno.</summary>
    public static int WriteAll(int fd, ReadOnlySpan<byte> data)
    {
        fixed (byte* start = data)
        {
            var p = start;
            var left = (nint)data.Length;
            while (left > 0)
            {
                var n = Write(fd, p, left);
                if (n < 0)
                {
                    var errno = LastError;
                    if (errno == EINTR)
                    {
                        continue;
                    }
                    return errno;
                }
                p += n;
                left -= n;
            }
        }
        return 0;
    }

    /// <summary>Writes all bytes at <paramref name="offset"/> (a descriptor without O_APPEND), retrying short writes and
    /// EINTR. Returns 0 or the errno.</summary>
    public static int WriteAllAt(int fd, ReadOnlySpan<byte> data, long offset)
    {
        fixed (byte* start = data)
        {
            var done = 0L;
            while (done < data.Length)
            {
                var n = Pwrite(fd, start + done, (nint)(data.Length - done), offset + done);
                if (n < 0)
                {
                    var errno = LastError;
                    if (errno == EINTR)
                    {
                        continue;
                    }
                    return errno;
                }
                done += n;
            }
        }
        return 0;
    }

    /// <summary>Reads up to buffer.Length bytes at offset; returns the count, or -1 with the errno set.</summary>
    public static int ReadAt(int fd, Span<byte> buffer, long offset)
    {
        fixed (byte* p = buffer)
        {
            while (true)
            {
                var n = Pread(fd, p, buffer.Length, offset);
                if (n >= 0 || LastError != EINTR)
                {
                    return (int)n;
                }
            }
        }
    }

    public static int Fstat(int fd, out FileStat stat)
    {
        var buffer = stackalloc byte[256];
        var rc = FstatRaw(fd, buffer);
        stat = rc == 0 ? FileStat.Parse(buffer) : default;
        return rc;
    }

    /// <summary>stat(2): a symbolic link is followed; nothing is opened.</summary>
    public static int Stat(string path, out FileStat stat)
    {
        var buffer = stackalloc byte[256];
        var rc = StatRaw(path, buffer);
        stat = rc == 0 ? FileStat.Parse(buffer) : default;
        return rc;
    }

    public static int Lstat(string path, out FileStat stat)
    {
        var buffer = stackalloc byte[256];
        var rc = LstatRaw(path, buffer);
        stat = rc == 0 ? FileStat.Parse(buffer) : default;
        return rc;
    }

    /// <summary>Open-file-description write lock on the whole file, non-blocking. 0, or the errno.
    /// OFD locks conflict with the classic POSIX locks Postfix, Dovecot, mutt and procmail take, and unlike
    /// those they are not dropped when another descriptor of the file is closed in this process.</summary>
    public static int TryLockWholeFile(int fd) => SetLock(fd, F_WRLCK);

    public static int UnlockWholeFile(int fd) => SetLock(fd, F_UNLCK);

    private static int SetLock(int fd, short type)
    {
        var info = new FlockStruct { Type = type, Whence = 0, Start = 0, Length = 0, Pid = 0 };
        return FcntlLock(fd, F_OFD_SETLK, &info) == 0 ? 0 : LastError;
    }

    /// <summary>uid and gid of a login from the passwd database (NSS), or null when there is none.</summary>
    public static (uint Uid, uint Gid)? GetPasswdEntry(string login)
    {
        var record = stackalloc byte[64];
        var buffer = new byte[16384];
        byte* result = null;
        fixed (byte* b = buffer)
        {
            var rc = GetpwnamR(login, record, b, buffer.Length, &result);
            if (rc != 0 || result == null)
            {
                return null;
            }
            // struct passwd on 64-bit Linux: char* pw_name; char* pw_passwd; uid_t pw_uid; gid_t pw_gid; ...
            return (*(uint*)(record + 16), *(uint*)(record + 20));
        }
    }

    /// <summary>The login and primary gid of the account with <paramref name="uid"/> (getpwuid_r), or null.</summary>
    public static (string Login, uint Gid)? GetPasswdByUid(uint uid)
    {
        var record = stackalloc byte[64];
        var buffer = new byte[16384];
        byte* result = null;
        fixed (byte* b = buffer)
        {
            var rc = GetpwuidR(uid, record, b, buffer.Length, &result);
            if (rc != 0 || result == null)
            {
                return null;
            }
            var name = Marshal.PtrToStringUTF8((nint)(*(byte**)record));
            return name is null ? null : (name, *(uint*)(record + 20));
        }
    }

    /// <summary>The name and the listed members of the group with <paramref name="gid"/> (getgrgid_r), or null.</summary>
    public static (string Name, IReadOnlyList<string> Members)? GetGroupById(uint gid)
    {
        var record = stackalloc byte[64];
        var buffer = new byte[65536];
        byte* result = null;
        fixed (byte* b = buffer)
        {
            if (GetgrgidR(gid, record, b, buffer.Length, &result) != 0 || result == null)
            {
                return null;
            }
            var name = Marshal.PtrToStringUTF8((nint)(*(byte**)record)) ?? "";
            var members = new List<string>();
            for (var member = *(byte***)(record + 24); member != null && *member != null; member++)
            {
                members.Add(Marshal.PtrToStringUTF8((nint)(*member)) ?? "");
            }
            return (name, members);
        }
    }

    [LibraryImport(Lib, EntryPoint = "getgrgid_r")]
    private static partial int GetgrgidR(uint gid, byte* grp, byte* buffer, nint bufferLength, byte** result);

    [LibraryImport(Lib, EntryPoint = "getpwuid_r")]
    private static partial int GetpwuidR(uint uid, byte* pwd, byte* buffer, nint bufferLength, byte** result);

    /// <summary>gid of a group from the group database, or null when there is none.</summary>
    public static uint? GetGroupId(string group)
    {
        var record = stackalloc byte[64];
        var buffer = new byte[65536];
        byte* result = null;
        fixed (byte* b = buffer)
        {
            var rc = GetgrnamR(group, record, b, buffer.Length, &result);
            if (rc != 0 || result == null)
            {
                return null;
            }
            // struct group: char* gr_name; char* gr_passwd; gid_t gr_gid; char** gr_mem;
            return *(uint*)(record + 16);
        }
    }

    /// <summary>Every group a login belongs to (its passwd group included), from the group database.</summary>
    public static IReadOnlyList<uint> GetGroupList(string login, uint gid)
    {
        var count = 64;
        while (true)
        {
            var groups = new uint[count];
            var n = count;
            fixed (uint* g = groups)
            {
                if (GetGroupListRaw(login, gid, g, &n) >= 0)
                {
                    return groups[..n];
                }
            }
            if (n <= count || count > 65536)
            {
                return [gid];
            }
            count = n;
        }
    }

    [LibraryImport(Lib, EntryPoint = "getgrouplist", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int GetGroupListRaw(string user, uint group, uint* groups, int* count);

    public static bool ProcessExists(int pid)
    {
        if (pid <= 0)
        {
            return true; // unknown owner: only age can make such a lock stale
        }
        return Kill(pid, 0) == 0 || LastError != ESRCH;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct FlockStruct
    {
        public short Type;
        public short Whence;
        public long Start;
        public long Length;
        public int Pid;
    }
}
