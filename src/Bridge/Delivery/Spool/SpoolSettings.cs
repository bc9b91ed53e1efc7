// Job: the spool settings one delivery runs with (a snapshot; reloads affect the next delivery only).
// Failure: none; values only.
namespace Bridge.Delivery.Spool;

public sealed record SpoolSettings(
    string Directory,
    long MaxMailboxBytes,
    TimeSpan LockTimeout,
    TimeSpan DotlockStaleAfter,
    uint? MailGroupId,
    bool DeferWhenFull = false,
    MboxFormat Format = MboxFormat.Mboxrd);
