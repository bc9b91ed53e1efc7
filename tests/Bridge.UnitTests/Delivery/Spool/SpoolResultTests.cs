using Bridge.Delivery.Spool;
using Bridge.Native;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>Pure logic: the one place a spool outcome becomes the reply an MTA gets.</summary>
public class SpoolResultTests
{
    public static TheoryData<string, string> Replies => new()
    {
        { SpoolResult.Ok.ToStatus("Q7").ToString(), "250 2.0.0 Ok: queued as Q7" },
        { SpoolResult.Busy("bob").ToStatus("Q").ToString(), "451 4.2.0 Mailbox bob is locked by another process, try again later" },
        { SpoolResult.Stopping().ToStatus("Q").ToString(), "421 4.3.2 System shutting down, try again later" },
        { SpoolResult.Unusable("bob", "it has 2 hard links").ToStatus("Q").ToString(), "450 4.2.0 Mailbox bob is unusable: it has 2 hard links" },
        { SpoolResult.Full("bob").ToStatus("Q").ToString(), "552 5.2.2 Mailbox bob is full" },
        { SpoolErrno.Classify(Libc.ENOSPC, SpoolStep.MailboxData, "bob", "write to").ToStatus("Q").ToString(), "452 4.3.1 Insufficient system storage" },
        { SpoolErrno.Classify(Libc.EDQUOT, SpoolStep.MailboxData, "bob", "write to").ToStatus("Q").ToString(), "552 5.2.2 Mailbox bob is full" },
        { SpoolErrno.Classify(Libc.EFBIG, SpoolStep.MailboxData, "bob", "write to").ToStatus("Q").ToString(), "552 5.2.2 Mailbox bob is full" },
        { SpoolErrno.Classify(5, SpoolStep.MailboxData, "bob", "fsync").ToStatus("Q").ToString(), "451 4.3.0 Local error: fsync bob: Input/output error (errno 5)" },
        { SpoolErrno.Classify(Libc.EDQUOT, SpoolStep.Journal, "bob", "/j").ToStatus("Q").ToString(), "452 4.3.1 Insufficient system storage" },
        { SpoolErrno.Classify(13, SpoolStep.Journal, "bob", "/j").ToStatus("Q").ToString(), "451 4.3.0 Local error: cannot write the append journal in /j: Permission denied (errno 13)" },
        { SpoolResult.Retry("bob", "mailbox owner changed while queued, try again").ToStatus("Q").ToString(), "451 4.3.0 mailbox owner changed while queued, try again" },
    };

    [Theory]
    [MemberData(nameof(Replies))]
    public void Each_result_has_its_reply(string actual, string expected) => Assert.Equal(expected, actual);

    [Fact]
    public void An_errno_is_kept_for_the_log() => Assert.Equal(Libc.ENOSPC, SpoolErrno.Classify(Libc.ENOSPC, SpoolStep.MailboxData, "bob", "write to").Errno);
}
