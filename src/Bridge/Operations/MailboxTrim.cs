// Job: for `drain` and `probe`, with a LockedMailbox's locks held: keep only some byte ranges of the mailbox (what the
// store did not take; everything but the probe's record). Ranges that are a prefix of the file are a truncation;
// anything else is a crash-safe rewrite (Delivery/Spool/MailboxRewrite: new file, fsync, rename).
// Failure: returns null or the error text; the mailbox is then as it was.
using Bridge.Delivery.Spool;
using Bridge.Native;

namespace Bridge.Operations;

internal static class MailboxTrim
{
    /// <summary>The mailbox becomes its bytes from <paramref name="offset"/> on (drain: the rest the store did not take).</summary>
    public static string? KeepFrom(LockedMailbox mailbox, long offset) =>
        Keep(mailbox, offset >= mailbox.Stat.Size ? [] : [(offset, mailbox.Stat.Size)]);

    /// <summary>Removes the bytes [start, end) (probe: one record).</summary>
    public static string? RemoveRange(LockedMailbox mailbox, long start, long end) =>
        Keep(mailbox, end >= mailbox.Stat.Size ? [(0, start)] : [(0, start), (end, mailbox.Stat.Size)]);

    private static string? Keep(LockedMailbox mailbox, IReadOnlyList<(long Start, long End)> ranges)
    {
        if (ranges.Count == 0 || (ranges.Count == 1 && ranges[0].Start == 0))
        {
            var cut = mailbox.TruncateTo(ranges.Count == 0 ? 0 : ranges[0].End, sync: true);
            return cut.IsOk ? null : cut.Detail;
        }
        var reader = Libc.Open(mailbox.Path, Libc.O_RDONLY | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
        if (reader < 0)
        {
            return Libc.Describe(Libc.LastError);
        }
        try
        {
            return MailboxRewrite.Keep(reader, mailbox.Path, mailbox.Stat, ranges);
        }
        finally
        {
            Libc.Close(reader);
        }
    }
}
