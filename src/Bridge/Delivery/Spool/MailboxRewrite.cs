// Job: replace a locked mailbox by a copy of some of its byte ranges, crash-safely: the ranges are copied to a new
// file in the same directory (same owner, group and mode), fsync'ed, renamed over the mailbox, and the directory
// fsync'ed, so a crash leaves the old or the new mailbox, never a mix. Used by `drain` (keep what the store did not
// take) and by crash recovery (drop Bridge's own partial record from between other mail).
// Writers that take the dotlock before opening (Postfix, procmail, Bridge) never write to the replaced file; a
// program that opened the mailbox before the rewrite and waits for its fcntl lock must notice the new inode, as
// Dovecot and mutt do.
// Failure: returns the error text and leaves the mailbox as it was (the temporary file is removed).
using Bridge.Native;

namespace Bridge.Delivery.Spool;

internal static class MailboxRewrite
{
    /// <param name="reader">A readable descriptor of the mailbox.</param>
    /// <param name="mailbox">Its fstat: the owner, group and mode the new file gets.</param>
    public static string? Keep(int reader, string path, FileStat mailbox, IReadOnlyList<(long Start, long End)> ranges)
    {
        var directory = System.IO.Path.GetDirectoryName(path)!;
        var temporary = System.IO.Path.Combine(directory, $".{System.IO.Path.GetFileName(path)}.rewrite-{Environment.ProcessId}");
        Libc.Unlink(temporary); // a leftover of a crashed rewrite of ours
        var writer = Libc.Open(temporary, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0x180);
        if (writer < 0)
        {
            return $"cannot create {temporary}: {Libc.Describe(Libc.LastError)}";
        }
        var renamed = false;
        try
        {
            var buffer = new byte[64 * 1024];
            foreach (var (start, end) in ranges)
            {
                for (var at = start; at < end;)
                {
                    var n = Libc.ReadAt(reader, buffer.AsSpan(0, (int)Math.Min(buffer.Length, end - at)), at);
                    if (n <= 0)
                    {
                        return n < 0 ? $"read {path}: {Libc.Describe(Libc.LastError)}" : $"{path} ended early";
                    }
                    var rc = Libc.WriteAll(writer, buffer.AsSpan(0, n));
                    if (rc != 0)
                    {
                        return $"write {temporary}: {Libc.Describe(rc)}";
                    }
                    at += n;
                }
            }
            if (Libc.Fchown(writer, mailbox.Uid, mailbox.Gid) != 0 || Libc.Fchmod(writer, mailbox.Permissions) != 0 || Libc.Fsync(writer) != 0)
            {
                return $"prepare {temporary}: {Libc.Describe(Libc.LastError)}";
            }
            if (Libc.Rename(temporary, path) != 0)
            {
                return $"rename {temporary} to {path}: {Libc.Describe(Libc.LastError)}";
            }
            renamed = true;
            var directoryFd = Libc.Open(directory, Libc.O_RDONLY | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
            if (directoryFd >= 0)
            {
                Libc.Fsync(directoryFd);
                Libc.Close(directoryFd);
            }
            return null;
        }
        finally
        {
            Libc.Close(writer);
            if (!renamed)
            {
                Libc.Unlink(temporary);
            }
        }
    }
}
