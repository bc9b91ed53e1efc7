// Job: deliver one message into the /var/mail mbox of every recipient, all or none: one copy per mailbox,
// mailboxes locked in a fixed order (no deadlock between sessions), every copy appended and fsync'ed before
// success is reported; if any copy fails, every copy already written is truncated away under its lock, so
// a 4xx never leaves duplicates behind when the MTA retries.
// Failure: a DeliveryStatus (see MailboxAppender and Errno); never throws for a delivery problem.
using Bridge.Routing;
using Microsoft.Extensions.Logging;

namespace Bridge.Delivery.Spool;

public sealed partial class SpoolDeliveryAgent(
    Func<SpoolSettings> settings, InProcessMailboxLocks locks, ILogger<SpoolDeliveryAgent> logger) : IDeliveryAgent
{
    public async Task<DeliveryResult> DeliverAsync(DeliveryRequest request, CancellationToken cancellationToken)
    {
        var settingsNow = settings();
        var status = await DeliverAllAsync(request, settingsNow, cancellationToken).ConfigureAwait(false);
        return DeliveryResult.Uniform(request.QueueId, request.Recipients, status, $"spool:{settingsNow.Directory}", 1);
    }

    private async Task<DeliveryStatus> DeliverAllAsync(DeliveryRequest request, SpoolSettings current, CancellationToken cancellationToken)
    {
        // One copy per mailbox: the first recipient that resolved to it names X-Original-To.
        var targets = request.Recipients
            .GroupBy(r => r.User.ShortName, StringComparer.Ordinal)
            .Select(g => g.First())
            .OrderBy(r => r.User.ShortName, StringComparer.Ordinal)
            .ToList();

        foreach (var target in targets)
        {
            if (!ShortName.IsSafeFileName(target.User.ShortName))
            {
                return new DeliveryStatus(550, "5.1.3", $"<{target.Address}>: short name is not a safe spool file name");
            }
            if (request.Headers.DeliveredTo.Contains(target.DeliveredTo, StringComparer.OrdinalIgnoreCase))
            {
                return DeliveryStatus.Loop(target.DeliveredTo);
            }
        }

        var now = DateTime.Now;
        var opened = new List<(MailboxAppender Appender, MboxRecord Record, RoutedRecipient Target)>();
        try
        {
            foreach (var target in targets)
            {
                var uid = target.User.Uid ?? Native.Libc.Geteuid();
                var (appender, status) = await MailboxAppender
                    .OpenAsync(target.User.ShortName, uid, current, locks, cancellationToken).ConfigureAwait(false);
                if (appender is null)
                {
                    return status;
                }
                var record = new MboxRecord(request.Sender, target.Address, target.DeliveredTo, now,
                    request.ReceivedHeader, request.Message);
                opened.Add((appender, record, target));
            }

            if (current.MaxMailboxBytes > 0)
            {
                foreach (var (appender, record, target) in opened)
                {
                    if (appender.OriginalSize + record.Length > current.MaxMailboxBytes)
                    {
                        return DeliveryStatus.MailboxFull(target.User.ShortName);
                    }
                }
            }

            foreach (var (appender, record, _) in opened)
            {
                var status = appender.Append(record);
                if (!status.IsSuccess)
                {
                    RollBack(request.QueueId, opened);
                    return status;
                }
            }
            foreach (var (appender, _, _) in opened)
            {
                var status = appender.Commit();
                if (!status.IsSuccess)
                {
                    RollBack(request.QueueId, opened);
                    return status;
                }
            }
            return DeliveryStatus.Delivered(request.QueueId);
        }
        finally
        {
            for (var i = opened.Count - 1; i >= 0; i--)
            {
                opened[i].Appender.Dispose();
            }
        }
    }

    private void RollBack(string queueId, List<(MailboxAppender Appender, MboxRecord Record, RoutedRecipient Target)> opened)
    {
        foreach (var (appender, _, _) in opened)
        {
            var error = appender.Rollback();
            if (error is not null)
            {
                LogRollbackFailed(queueId, error);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Critical, Message = "{QueueId}: rollback failed, the mailbox may hold a partial record: {Error}")]
    private partial void LogRollbackFailed(string queueId, string error);
}
