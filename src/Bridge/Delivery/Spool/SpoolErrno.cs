// Job: the one table from a failed system call's errno to a spool outcome (SpoolResult), for each step of a delivery
// that touches the file system: the mailbox's data (write, fsync), the mailbox's open/create, the dotlock, the
// journal entry. Each row says why; SpoolResult.ToStatus alone turns the outcome into a reply.
// Failure: none; values only. An errno the table does not name is a temporary local error (4.3.0) or, when opening
// the mailbox, a mailbox Bridge may not write (4.2.0): mail is retried, never bounced by surprise.
using Bridge.Native;

namespace Bridge.Delivery.Spool;

/// <summary>Which file a failed call was made on, for SpoolErrno's table.</summary>
public enum SpoolStep
{
    /// <summary>write(2) or fsync(2) of the user's mailbox.</summary>
    MailboxData,

    /// <summary>open(2) of the user's mailbox (O_CREAT for a new one).</summary>
    MailboxOpen,

    /// <summary>Creating the dotlock beside the mailbox in the spool directory.</summary>
    Dotlock,

    /// <summary>Writing the append journal entry that must precede the append (Bridge:Spool:JournalDirectory).</summary>
    Journal,
}

internal static class SpoolErrno
{
    /// <param name="subject">What the failed call was made on, for the detail: "write to"/"fsync" for the mailbox's
    /// data, the dotlock's path, the journal's directory; unused when opening the mailbox.</param>
    public static SpoolResult Classify(int errno, SpoolStep step, string mailbox, string subject) => (errno, step) switch
    {
        // The file system is full: nothing about this mail or mailbox is wrong; every step says the same
        // (452 4.3.1), so the MTA keeps the mail and retries.
        (Libc.ENOSPC, _) => new(SpoolProblem.NoSpace, mailbox, errno, ""),

        // The mailbox itself grew past its owner's disk quota or the file size limit: that user's mailbox is full
        // (552 5.2.2, or 452 4.2.2 with Bridge:Spool:QuotaExceeded = Defer), the same answer as Bridge:Spool:MaxMailboxBytes.
        (Libc.EDQUOT or Libc.EFBIG, SpoolStep.MailboxData) => SpoolResult.Full(mailbox, errno),

        // A quota met while creating a file (a new mailbox, a dotlock, a journal entry) is charged to Bridge's own
        // account, not to the recipient: it is the system's storage that is short (452 4.3.1), never the user's
        // mailbox being full.
        (Libc.EDQUOT, _) => new(SpoolProblem.NoSpace, mailbox, errno, ""),

        // The spool directory does not let Bridge create or open the file: the administrator's fix is its mode.
        (Libc.EACCES or Libc.EPERM, SpoolStep.MailboxOpen) => SpoolResult.Failed(mailbox,
            $"cannot open mailbox {mailbox} in the spool directory: {Libc.Describe(errno)}; check its permissions (1777, or 2775 group mail)", errno),
        (Libc.EACCES or Libc.EPERM or Libc.EROFS, SpoolStep.Dotlock) => SpoolResult.Failed(mailbox,
            $"cannot create dotlock {subject}: {Libc.Describe(errno)}; the spool directory must let Bridge create files (1777, or 2775 group mail)", errno),

        // Any other failure to open the mailbox (ELOOP: a symlink, EISDIR, ENXIO: a FIFO without reader, ...) is about
        // what sits at the mailbox's name: a mailbox Bridge may not write as it is (450 4.2.0).
        (_, SpoolStep.MailboxOpen) => SpoolResult.Unusable(mailbox, Libc.Describe(errno), errno),

        // Anything else is a local error worth retrying (451 4.3.0), with the call and errno for the log.
        (_, SpoolStep.MailboxData) => SpoolResult.Failed(mailbox, $"{subject} {mailbox}: {Libc.Describe(errno)}", errno),
        (_, SpoolStep.Dotlock) => SpoolResult.Failed(mailbox, $"cannot create dotlock {subject}: {Libc.Describe(errno)}", errno),
        _ => SpoolResult.Failed(mailbox, $"cannot write the append journal in {subject}: {Libc.Describe(errno)}", errno),
    };
}
