// Job: the one definition of a mailbox Bridge may write: a regular file (never a symbolic link, FIFO or device),
// with exactly one link (no hard link planted by another user), owned by the user whose mail it holds, and not
// readable by others. Delivery (LockedMailbox) refuses a mailbox that breaks the first three rules; `mailbridge check`
// and `mailbridge resolve` report all four, with the fix.
// Failure: none; a problem is a value (what is wrong, and the fix an administrator applies).
using Bridge.Native;

namespace Bridge.Delivery.Spool;

/// <param name="Text">What is wrong, as "the mailbox ..." would continue ("is a symbolic link").</param>
/// <param name="Fix">What an administrator does about it; "chown" when the owner is wrong (the caller names the user).</param>
internal sealed record MailboxFlaw(string Text, string Fix);

internal static class MailboxSafety
{
    /// <summary>Permission bits that let others (not owner, not group) at the mail: 0600, or 0660 with group mail, is fine.</summary>
    public const uint OtherAccess = 0x7; // 0007

    /// <summary>The flaw that stops delivery, or null. <paramref name="stat"/> from lstat (then a symlink is seen) or fstat;
    /// <paramref name="expectedUid"/> null when the owner is not known (it is then not checked).</summary>
    public static MailboxFlaw? Problem(in FileStat stat, uint? expectedUid) =>
        stat.IsSymbolicLink ? new MailboxFlaw("is a symbolic link", "replace it with the real file")
        : !stat.IsRegularFile ? new MailboxFlaw("is not a regular file", "move it away")
        : stat.Links != 1 ? new MailboxFlaw($"has {stat.Links} hard links", "remove the other links")
        : expectedUid is { } uid && stat.Uid != uid ? new MailboxFlaw($"is owned by uid {stat.Uid}, not by its user (uid {uid})", "chown")
        : null;

    /// <summary>Readable or writable by others: not a reason to defer mail, but a finding.</summary>
    public static bool OpenToOthers(in FileStat stat) => (stat.Permissions & OtherAccess) != 0;
}
