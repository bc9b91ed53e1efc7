// Job: the one result every step inside Spool returns (open, lock, journal, write, fsync, truncate): success, or what
// went wrong as a kind, the mailbox, the errno when a system call failed, and the detail. The reply an MTA gets is
// made from it in exactly one place, ToStatus, called at the agent's boundary (SpoolDeliveryAgent) and by the
// verbs that report it (drain, probe).
// Failure: none; values only. Which errno becomes which kind is SpoolErrno's table.
using Bridge.Common;
using Bridge.Native;

namespace Bridge.Delivery.Spool;

internal enum SpoolProblem
{
    None,

    /// <summary>Another program holds the mailbox's locks past Bridge:Spool:LockTimeout.</summary>
    Busy,

    /// <summary>The delivery's time is up, or Bridge stops: nothing was written.</summary>
    Stopping,

    /// <summary>The mailbox may not be written as it is (symlink, links, owner, type...): Detail says why.</summary>
    Unusable,

    /// <summary>Over Bridge:Spool:MaxMailboxBytes, or the file system's quota or size limit.</summary>
    Full,

    /// <summary>The file system is out of space.</summary>
    NoSpace,

    /// <summary>A local failure: Detail is the whole explanation.</summary>
    Failed,

    /// <summary>Nothing wrong with the mail, try again (Detail says why).</summary>
    Retry,
}

internal readonly record struct SpoolResult(SpoolProblem Problem, string Mailbox, int Errno, string Detail)
{
    public static SpoolResult Ok => default;

    public bool IsOk => Problem == SpoolProblem.None;

    public static SpoolResult Busy(string mailbox) => new(SpoolProblem.Busy, mailbox, 0, "");

    public static SpoolResult Stopping() => new(SpoolProblem.Stopping, "", 0, "");

    public static SpoolResult Unusable(string mailbox, string reason, int errno = 0) => new(SpoolProblem.Unusable, mailbox, errno, reason);

    public static SpoolResult Full(string mailbox, int errno = 0) => new(SpoolProblem.Full, mailbox, errno, "");

    public static SpoolResult Failed(string mailbox, string detail, int errno = 0) => new(SpoolProblem.Failed, mailbox, errno, detail);

    public static SpoolResult Retry(string mailbox, string why) => new(SpoolProblem.Retry, mailbox, 0, why);

    /// <summary>The reply for this result: the only place a spool outcome becomes SMTP. <paramref name="deferWhenFull"/>:
    /// Bridge:Spool:QuotaExceeded = Defer (a full mailbox is 452 4.2.2, not 552 5.2.2).</summary>
    public DeliveryStatus ToStatus(string queueId, bool deferWhenFull = false) => Problem switch
    {
        SpoolProblem.None => DeliveryStatus.Delivered(queueId),
        SpoolProblem.Busy => DeliveryStatus.LockBusy(Mailbox),
        SpoolProblem.Stopping => new DeliveryStatus(421, "4.3.2", "System shutting down, try again later"),
        SpoolProblem.Unusable => DeliveryStatus.MailboxUnusable(Mailbox, Detail),
        SpoolProblem.Full => deferWhenFull ? DeliveryStatus.MailboxFullForNow(Mailbox) : DeliveryStatus.MailboxFull(Mailbox),
        SpoolProblem.NoSpace => DeliveryStatus.NoSpace(),
        SpoolProblem.Retry => DeliveryStatus.Deferred(Detail),
        _ => DeliveryStatus.LocalError(Detail),
    };

    public override string ToString() => ToStatus("-").ToString();
}
