// Job: the fields of struct stat that mailbox safety checks need, read at the offsets of the 64-bit Linux ABIs.
// Failure: none here; Libc.Fstat/Lstat report errors before a FileStat exists.
using System.Runtime.InteropServices;

namespace Bridge.Native;

internal readonly record struct FileStat(
    ulong Device, ulong Inode, ulong Links, uint Mode, uint Uid, uint Gid, long Size, long ChangeTimeSeconds, long ChangeTimeNanoseconds = 0)
{
    public bool IsRegularFile => (Mode & Libc.S_IFMT) == Libc.S_IFREG;

    /// <summary>Only from lstat: fstat and stat follow links.</summary>
    public bool IsSymbolicLink => (Mode & Libc.S_IFMT) == Libc.S_IFLNK;

    public bool IsSocket => (Mode & Libc.S_IFMT) == Libc.S_IFSOCK;

    public uint Permissions => Mode & 0xFFF;

    public bool IsFifo => (Mode & Libc.S_IFMT) == 0x1000;

    public bool IsDirectory => (Mode & Libc.S_IFMT) == 0x4000;

    /// <summary>What kind of file this is, as a person says it ("a FIFO").</summary>
    public string KindName => (Mode & Libc.S_IFMT) switch
    {
        Libc.S_IFREG => "a regular file",
        Libc.S_IFLNK => "a symbolic link",
        Libc.S_IFSOCK => "a socket",
        0x1000 => "a FIFO",
        0x2000 => "a character device",
        0x4000 => "a directory",
        0x6000 => "a block device",
        _ => "an unknown kind of file",
    };

    public bool SameFileAs(FileStat other) => Device == other.Device && Inode == other.Inode;

    public static unsafe FileStat Parse(byte* b)
    {
        if (RuntimeInformation.ProcessArchitecture == Architecture.Arm64)
        {
            // generic ABI: dev@0 ino@8 mode@16(u32) nlink@20(u32) uid@24 gid@28 rdev@32 pad@40 size@48 ... ctim@104
            return new FileStat(*(ulong*)b, *(ulong*)(b + 8), *(uint*)(b + 20), *(uint*)(b + 16),
                *(uint*)(b + 24), *(uint*)(b + 28), *(long*)(b + 48), *(long*)(b + 104), *(long*)(b + 112));
        }
        // x86_64: dev@0 ino@8 nlink@16(u64) mode@24 uid@28 gid@32 pad@36 rdev@40 size@48 ... ctim@104
        return new FileStat(*(ulong*)b, *(ulong*)(b + 8), *(ulong*)(b + 16), *(uint*)(b + 24),
            *(uint*)(b + 28), *(uint*)(b + 32), *(long*)(b + 48), *(long*)(b + 104), *(long*)(b + 112));
    }
}
