using Bridge.Delivery.Spool;
using Bridge.Native;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>Pure logic: SpoolErrno's table, every row, as the reply an MTA gets for it.</summary>
public class SpoolErrnoTests
{
    [Theory]
    // ENOSPC: the file system is full, whatever the step
    [InlineData(Libc.ENOSPC, SpoolStep.MailboxData, "452 4.3.1 Insufficient system storage")]
    [InlineData(Libc.ENOSPC, SpoolStep.MailboxOpen, "452 4.3.1 Insufficient system storage")]
    [InlineData(Libc.ENOSPC, SpoolStep.Dotlock, "452 4.3.1 Insufficient system storage")]
    [InlineData(Libc.ENOSPC, SpoolStep.Journal, "452 4.3.1 Insufficient system storage")]
    // EDQUOT/EFBIG on the mailbox's data: that user's mailbox is full
    [InlineData(Libc.EDQUOT, SpoolStep.MailboxData, "552 5.2.2 Mailbox bob is full")]
    [InlineData(Libc.EFBIG, SpoolStep.MailboxData, "552 5.2.2 Mailbox bob is full")]
    // EDQUOT creating a file: Bridge's own quota, the system's storage
    [InlineData(Libc.EDQUOT, SpoolStep.MailboxOpen, "452 4.3.1 Insufficient system storage")]
    [InlineData(Libc.EDQUOT, SpoolStep.Dotlock, "452 4.3.1 Insufficient system storage")]
    [InlineData(Libc.EDQUOT, SpoolStep.Journal, "452 4.3.1 Insufficient system storage")]
    // the spool directory's permissions
    [InlineData(Libc.EACCES, SpoolStep.MailboxOpen,
        "451 4.3.0 Local error: cannot open mailbox bob in the spool directory: Permission denied (errno 13); check its permissions (1777, or 2775 group mail)")]
    [InlineData(Libc.EROFS, SpoolStep.Dotlock,
        "451 4.3.0 Local error: cannot create dotlock S: Read-only file system (errno 30); the spool directory must let Bridge create files (1777, or 2775 group mail)")]
    // what sits at the mailbox's name
    [InlineData(Libc.ELOOP, SpoolStep.MailboxOpen, "450 4.2.0 Mailbox bob is unusable: Too many levels of symbolic links (errno 40)")]
    [InlineData(Libc.EFBIG, SpoolStep.MailboxOpen, "450 4.2.0 Mailbox bob is unusable: File too large (errno 27)")]
    // everything else: a local error, retried
    [InlineData(Libc.EIO, SpoolStep.MailboxData, "451 4.3.0 Local error: S bob: Input/output error (errno 5)")]
    [InlineData(Libc.EIO, SpoolStep.Dotlock, "451 4.3.0 Local error: cannot create dotlock S: Input/output error (errno 5)")]
    [InlineData(Libc.EFBIG, SpoolStep.Journal, "451 4.3.0 Local error: cannot write the append journal in S: File too large (errno 27)")]
    [InlineData(Libc.EROFS, SpoolStep.MailboxData, "451 4.3.0 Local error: S bob: Read-only file system (errno 30)")]
    public void Each_row_has_its_reply(int errno, SpoolStep step, string reply) =>
        Assert.Equal(reply, SpoolErrno.Classify(errno, step, "bob", "S").ToStatus("Q").ToString());

    [Theory]
    [InlineData(SpoolStep.MailboxData)]
    [InlineData(SpoolStep.MailboxOpen)]
    [InlineData(SpoolStep.Dotlock)]
    [InlineData(SpoolStep.Journal)]
    public void No_errno_makes_a_permanent_failure_except_a_full_mailbox(SpoolStep step)
    {
        for (var errno = 1; errno < 134; errno++)
        {
            var status = SpoolErrno.Classify(errno, step, "bob", "S").ToStatus("Q");
            Assert.True(status.Code < 500 || (step == SpoolStep.MailboxData && errno is Libc.EDQUOT or Libc.EFBIG), $"errno {errno} at {step}: {status}");
            Assert.Equal(errno, SpoolErrno.Classify(errno, step, "bob", "S").Errno);
        }
    }
}
