// Job: open a file with the rights of another account, on the calling thread only, the way Postfix's local(8) opens an
// :include: file "with the owner rights of the :include: file": for the one open(2), the thread's file-system uid and
// gid (setfsuid/setfsgid), its supplementary groups (the raw setgroups system call: glibc's wrapper would change every
// thread) and its effective capabilities (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER dropped with capset,
// which is per thread) become those of the account; then all of them are put back before the caller's code runs on.
// Nothing but system calls runs in between (no managed allocation, no await), so no other code ever runs with the
// borrowed identity, and a descriptor opened that way is read with Bridge's own identity afterwards.
// Failure: an identity that cannot be taken (no CAP_SETUID/CAP_SETGID in force) is the errno CannotTakeRights and
// nothing is changed or opened; an identity that cannot be given back ends the process at once (Environment.FailFast), since
// the thread would otherwise go on with another account's rights or without Bridge's.
using System.Runtime.InteropServices;

namespace Bridge.Native;

/// <summary>Whose rights an open uses: an account's uid, primary gid and every group it belongs to.</summary>
internal sealed record AccountRights(uint Uid, uint Gid, uint[] Groups, string Login)
{
    /// <summary>The rights of the account that owns <paramref name="uid"/>, from the passwd and group databases; null
    /// when no account has that uid (then nobody's rights can be taken for it).</summary>
    public static AccountRights? OfUid(uint uid)
    {
        if (Libc.GetPasswdByUid(uid) is not { } account)
        {
            return null;
        }
        return new AccountRights(uid, account.Gid, [.. Libc.GetGroupList(account.Login, account.Gid)], account.Login);
    }

    public override string ToString() => $"{Login} (uid {Uid})";
}

internal static unsafe partial class ThreadIdentity
{
    private const uint CapabilityVersion3 = 0x20080522;

    /// <summary>CAP_DAC_OVERRIDE (1), CAP_DAC_READ_SEARCH (2), CAP_FOWNER (3): the powers over other users' files.</summary>
    private const uint FilePowers = (1u << 1) | (1u << 2) | (1u << 3);

    /// <summary>CAP_SETGID (6), CAP_SETUID (7): what taking another account's file-system identity needs.</summary>
    private const uint SetIdPowers = (1u << 6) | (1u << 7);

    /// <summary>The errno OpenAs reports when Bridge may not take another account's rights (no CAP_SETUID/CAP_SETGID).</summary>
    public const int CannotTakeRights = -1;

    private static readonly bool Arm64 = RuntimeInformation.ProcessArchitecture == Architecture.Arm64;
    private static readonly long SysSetgroups = Arm64 ? 159 : 116;
    private static readonly long SysCapget = Arm64 ? 90 : 125;
    private static readonly long SysCapset = Arm64 ? 91 : 126;

    static ThreadIdentity()
    {
        // Bind every native import once, here, so that nothing but the system calls themselves runs (no loading or
        // binding of a library) while another account's identity is in force.
        var root = "/\0"u8.ToArray();
        fixed (byte* p = root)
        {
            var fd = Libc.OpenRaw(p, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
            if (fd >= 0)
            {
                Libc.Close(fd);
            }
        }
        _ = GetGroups(0, null);
        CapHeader header = new() { Version = CapabilityVersion3, Pid = 0 };
        CapData* caps = stackalloc CapData[2];
        _ = Syscall(SysCapget, (long)&header, (long)caps);
        _ = SetFsuid(uint.MaxValue);
        _ = SetFsgid(uint.MaxValue);
    }

    /// <summary>open(2) of <paramref name="path"/> with <paramref name="flags"/>, the access checked against
    /// <paramref name="rights"/> instead of Bridge's own. Returns the descriptor, or -1 and the errno in
    /// <paramref name="errno"/> (CannotTakeRights when the rights could not be taken: nothing was opened).</summary>
    public static int OpenAs(string path, int flags, AccountRights rights, out int errno)
    {
        var pathBytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        var groups = rights.Groups.Length > 0 ? rights.Groups : [rights.Gid];
        var savedGroups = new uint[Math.Max(GetGroups(0, null), 0) + 8];
        fixed (byte* p = pathBytes)
        fixed (uint* wanted = groups)
        fixed (uint* saved = savedGroups)
        {
            var savedCount = GetGroups(savedGroups.Length, saved);
            var savedFsuid = (uint)SetFsuid(uint.MaxValue); // (uid_t)-1 changes nothing and returns the current value
            var savedFsgid = (uint)SetFsgid(uint.MaxValue);
            CapHeader header = new() { Version = CapabilityVersion3, Pid = 0 };
            CapData* caps = stackalloc CapData[2];
            if (savedCount < 0 || Syscall(SysCapget, (long)&header, (long)caps) != 0)
            {
                errno = CannotTakeRights;
                return -1;
            }
            var savedCaps = caps[0];
            var savedCapsHigh = caps[1];
            if (savedFsuid == rights.Uid && savedFsgid == rights.Gid && (savedCaps.Effective & FilePowers) == 0)
            {
                var own = Libc.OpenRaw(p, flags, 0); // already exactly these rights (an unprivileged Bridge reading its own files)
                errno = own < 0 ? Libc.LastError : 0;
                return own;
            }

            // Taking another account's file-system identity needs CAP_SETUID and CAP_SETGID (root has them; the unit
            // grants them); without them nothing is changed and nothing is opened.
            if ((savedCaps.Effective & SetIdPowers) != SetIdPowers)
            {
                errno = CannotTakeRights;
                return -1;
            }

            var fd = -1;
            errno = CannotTakeRights;
            var reduced = caps[0];
            reduced.Effective &= ~FilePowers;
            CapData* lowered = stackalloc CapData[2];
            lowered[0] = reduced;
            lowered[1] = savedCapsHigh;
            header = new CapHeader { Version = CapabilityVersion3, Pid = 0 };
            var capsChanged = Syscall(SysCapset, (long)&header, (long)lowered) == 0;
            var groupsChanged = capsChanged && Syscall(SysSetgroups, groups.Length, (long)wanted) == 0;
            var gidChanged = false;
            var uidChanged = false;
            if (groupsChanged)
            {
                _ = SetFsgid(rights.Gid);
                gidChanged = true;
                if ((uint)SetFsgid(uint.MaxValue) == rights.Gid)
                {
                    _ = SetFsuid(rights.Uid);
                    uidChanged = true;
                    if ((uint)SetFsuid(uint.MaxValue) == rights.Uid)
                    {
                        fd = Libc.OpenRaw(p, flags, 0);
                        errno = fd < 0 ? Libc.LastError : 0;
                    }
                }
            }

            // Give back what was changed, in the reverse order; the capabilities last (the fsuid going back to 0 raised
            // the file powers again, capset then sets exactly what was there).
            if (uidChanged)
            {
                _ = SetFsuid(savedFsuid);
            }
            if (gidChanged)
            {
                _ = SetFsgid(savedFsgid);
            }
            var groupsBack = !groupsChanged || Syscall(SysSetgroups, savedCount, (long)saved) == 0;
            header = new CapHeader { Version = CapabilityVersion3, Pid = 0 };
            CapData* back = stackalloc CapData[2];
            back[0] = savedCaps;
            back[1] = savedCapsHigh;
            var capsBack = !capsChanged || Syscall(SysCapset, (long)&header, (long)back) == 0;
            if ((uint)SetFsuid(uint.MaxValue) != savedFsuid || (uint)SetFsgid(uint.MaxValue) != savedFsgid || !groupsBack || !capsBack)
            {
                Environment.FailFast($"mailbridge: could not give this thread its own identity back after opening {path} as {rights}");
            }
            return fd;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapHeader
    {
        public uint Version;
        public int Pid;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct CapData
    {
        public uint Effective;
        public uint Permitted;
        public uint Inheritable;
    }

    [LibraryImport("libc", EntryPoint = "setfsuid")]
    private static partial int SetFsuid(uint uid);

    [LibraryImport("libc", EntryPoint = "setfsgid")]
    private static partial int SetFsgid(uint gid);

    [LibraryImport("libc", EntryPoint = "getgroups")]
    private static partial int GetGroups(int size, uint* list);

    /// <summary>syscall(2) with two arguments: the raw system call, without glibc's all-threads wrappers.</summary>
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long first, long second);
}
