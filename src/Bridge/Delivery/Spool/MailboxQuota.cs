// Job: quota known before DATA: whether a mailbox is already over Bridge:Spool:MaxMailboxBytes, or would be with the
// size the client announced (MAIL ... SIZE=), so RCPT is refused and the client does not send the body for nothing.
// Only a look at the file's size (lstat, no lock): the recheck under the locks after DATA stays the rule.
// Failure: none; a mailbox that cannot be looked at is not refused here (delivery finds and reports the problem).
using Bridge.Common;
using Bridge.Native;

namespace Bridge.Delivery.Spool;

public static class MailboxQuota
{
    /// <summary>The reply refusing RCPT for <paramref name="shortName"/>, or null when the mail may come.</summary>
    /// <param name="announcedSize">SIZE= of MAIL FROM, 0 when none was given.</param>
    public static DeliveryStatus? RefusalAtRcpt(SpoolSettings settings, string shortName, long announcedSize)
    {
        if (settings.MaxMailboxBytes <= 0 || !ShortName.IsSafeFileName(shortName) ||
            Libc.Lstat(Path.Combine(settings.Directory, shortName), out var stat) != 0 || !stat.IsRegularFile)
        {
            return null;
        }
        return stat.Size >= settings.MaxMailboxBytes || stat.Size + Math.Max(0, announcedSize) > settings.MaxMailboxBytes
            ? SpoolResult.Full(shortName).ToStatus("", settings.DeferWhenFull)
            : null;
    }
}
