// Job: feed a byte range of an open file into a running XxHash64, read with pread (the descriptor's offset is left
// alone): what CollectCursor proves a collected record with and MailboxCut proves the bytes of a cut with.
// Failure: false when the range cannot be read whole (an error, or the file ends before it); nothing throws.
using System.IO.Hashing;
using Bridge.Native;

namespace Bridge.Delivery.Spool;

internal static class FileRangeHash
{
    public static bool Append(XxHash64 hasher, int fd, long start, long end, byte[] buffer)
    {
        for (var at = start; at < end;)
        {
            var n = Libc.ReadAt(fd, buffer.AsSpan(0, (int)Math.Min(buffer.Length, end - at)), at);
            if (n <= 0)
            {
                return false;
            }
            hasher.Append(buffer.AsSpan(0, n));
            at += n;
        }
        return true;
    }
}
