// Job: turn an errno from a mailbox write into the reply an MTA should get.
// Failure: none; unknown errnos become a temporary local error, so mail is retried, never bounced by surprise.
using System.Runtime.InteropServices;
using Bridge.Native;
using Bridge.Common;

namespace Bridge.Delivery.Spool;

internal static class Errno
{
    public static DeliveryStatus ToStatus(int errno, string mailbox, string operation) => errno switch
    {
        Libc.ENOSPC => DeliveryStatus.NoSpace(),
        Libc.EFBIG or Libc.EDQUOT => DeliveryStatus.MailboxFull(mailbox),
        _ => DeliveryStatus.LocalError($"{operation} {mailbox}: {Describe(errno)}"),
    };

    /// <summary>The journal entry that must precede an append could not be written.</summary>
    public static DeliveryStatus JournalStatus(int errno, string directory) => errno switch
    {
        Libc.ENOSPC or Libc.EDQUOT => DeliveryStatus.NoSpace(),
        _ => DeliveryStatus.LocalError($"cannot write the append journal in {directory}: {Describe(errno)}"),
    };

    public static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}
