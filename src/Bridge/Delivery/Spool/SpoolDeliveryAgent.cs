// Job: deliver one message into the /var/mail mbox of every recipient, all or none: one copy per mailbox,
// (a mailbox refused for good, by a Delivered-To loop or Bridge:Spool:MaxMailboxBytes, is left out and
// reported for its recipients alone, so the others still get the message and the sender a notification),
// mailboxes locked in a fixed order (no deadlock between sessions), every copy appended and fsync'ed before
// success is reported; if any copy fails, every copy already written is truncated away under its lock, so
// a 4xx never leaves duplicates behind when the MTA retries. Each append is announced in the AppendJournal
// first, so that an append cut short by a crash is removed before anything else is written to that mailbox.
// A message for one mailbox (the common case: Postfix sends one recipient per transaction) goes through the
// GroupCommitter, which shares the lock, journal entry and fsync with concurrent deliveries to that mailbox.
// Failure: a DeliveryStatus (see MailboxAppender and Errno); never throws for a delivery problem.
using Microsoft.Extensions.Logging;
using Bridge.Common;

namespace Bridge.Delivery.Spool;

public sealed partial class SpoolDeliveryAgent : IDeliveryAgent
{
    private readonly Func<SpoolSettings> settings;
    private readonly InProcessMailboxLocks locks;
    private readonly AppendJournal journal;
    private readonly GroupCommitter committer;
    private readonly ILogger<SpoolDeliveryAgent> logger;

    public SpoolDeliveryAgent(Func<SpoolSettings> settings, InProcessMailboxLocks locks, AppendJournal journal, ILogger<SpoolDeliveryAgent> logger)
    {
        this.settings = settings;
        this.locks = locks;
        this.journal = journal;
        this.logger = logger;
        committer = new GroupCommitter(locks, journal, logger, LogRecovery);
    }

    /// <summary>Group commits so far (one lock, journal entry and fsync each).</summary>
    public long GroupCommits => committer.Batches;

    public async Task<DeliveryResult> DeliverAsync(DeliveryRequest request, CancellationToken cancellationToken)
    {
        var settingsNow = settings();
        var refused = new Dictionary<string, DeliveryStatus>(StringComparer.Ordinal);
        var status = await DeliverAllAsync(request, settingsNow, refused, cancellationToken).ConfigureAwait(false);
        var relay = $"spool:{settingsNow.Directory}";
        var outcomes = request.Recipients
            .Select(r => new RecipientOutcome(r, refused.TryGetValue(r.User.ShortName, out var own) ? own : status, relay, 1))
            .ToList();
        return DeliveryResult.Compose(request.QueueId, outcomes);
    }

    /// <summary>Mailboxes refused for good (loop, over MaxMailboxBytes) go into <paramref name="refused"/> and are
    /// left out; the others are written all or none. Returns the status of that write.</summary>
    private async Task<DeliveryStatus> DeliverAllAsync(DeliveryRequest request, SpoolSettings current,
        Dictionary<string, DeliveryStatus> refused, CancellationToken cancellationToken)
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
                refused[target.User.ShortName] = new DeliveryStatus(550, "5.1.3", $"<{target.Address}>: short name is not a safe spool file name");
            }
            else if (request.Headers.DeliveredTo.Contains(target.DeliveredTo, StringComparer.OrdinalIgnoreCase))
            {
                refused[target.User.ShortName] = DeliveryStatus.Loop(target.DeliveredTo);
            }
        }
        targets.RemoveAll(t => refused.ContainsKey(t.User.ShortName));

        var now = DateTime.Now;
        if (targets.Count == 1)
        {
            var only = targets[0];
            var single = new MboxRecord(request.Sender, only.Address, only.DeliveredTo, now, request.ReceivedHeader, request.Message);
            return await committer.AppendAsync(only.User.ShortName, only.User.Uid ?? Native.Libc.Geteuid(), request.QueueId, single, current,
                cancellationToken).ConfigureAwait(false);
        }
        // Locks, writes and fsyncs block the thread: never on a socket event thread (Hosting/SocketThreads.cs).
        return await Task.Run(() => AppendAllOrNoneAsync(request, targets, now, current, refused, cancellationToken), CancellationToken.None)
            .ConfigureAwait(false);
    }

    private async Task<DeliveryStatus> AppendAllOrNoneAsync(DeliveryRequest request, List<RoutedRecipient> targets, DateTime now,
        SpoolSettings current, Dictionary<string, DeliveryStatus> refused, CancellationToken cancellationToken)
    {
        var opened = new List<(MailboxAppender Appender, MboxRecord Record, RoutedRecipient Target)>();
        try
        {
            foreach (var target in targets)
            {
                var uid = target.User.Uid ?? Native.Libc.Geteuid();
                var (appender, status) = await MailboxAppender
                    .OpenAsync(target.User.ShortName, uid, current, locks, journal, cancellationToken).ConfigureAwait(false);
                if (appender is null)
                {
                    return status;
                }
                foreach (var note in appender.Notes)
                {
                    LogRecovery(note);
                }
                var record = new MboxRecord(request.Sender, target.Address, target.DeliveredTo, now,
                    request.ReceivedHeader, request.Message);
                opened.Add((appender, record, target));
            }

            var lengths = opened.Select(o => o.Record.Length).ToList();
            for (var i = opened.Count - 1; i >= 0; i--)
            {
                if (current.MaxMailboxBytes > 0 && opened[i].Appender.OriginalSize + lengths[i] > current.MaxMailboxBytes)
                {
                    refused[opened[i].Target.User.ShortName] = DeliveryStatus.MailboxFull(opened[i].Target.User.ShortName);
                    opened[i].Appender.Dispose();
                    opened.RemoveAt(i);
                    lengths.RemoveAt(i);
                }
            }

            if (cancellationToken.IsCancellationRequested)
            {
                return MailboxAppender.ShuttingDown(); // the delivery's time is up: nothing is written any more
            }
            // No byte is appended before the journal says where each append starts and ends, and what its bytes are.
            for (var i = 0; i < opened.Count; i++)
            {
                var (appender, record, target) = opened[i];
                var entry = AppendDigest.EntryFor(appender.Stat, appender.OriginalSize, [record]);
                var rc = journal.Record(target.User.ShortName, entry);
                if (rc != 0)
                {
                    ForgetAll(opened);
                    return Errno.JournalStatus(rc, journal.Directory);
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
            ForgetAll(opened);
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
        foreach (var (appender, _, target) in opened)
        {
            var error = appender.Rollback();
            if (error is not null)
            {
                LogRollbackFailed(queueId, error); // the journal entry stays: recovery truncates before the next delivery
            }
            else
            {
                journal.Forget(target.User.ShortName);
            }
        }
    }

    private void ForgetAll(List<(MailboxAppender Appender, MboxRecord Record, RoutedRecipient Target)> opened)
    {
        foreach (var (_, _, target) in opened)
        {
            journal.Forget(target.User.ShortName);
        }
    }

    /// <summary>At start, before Bridge listens: settle every append a crash interrupted.</summary>
    public async Task RecoverAsync(CancellationToken cancellationToken)
    {
        var current = settings();
        foreach (var shortName in journal.Pending())
        {
            if (!ShortName.IsSafeFileName(shortName))
            {
                LogRecovery(new RecoveryNote(false, $"{shortName}: not a mailbox name Bridge writes; " +
                    (journal.Keep(shortName, "the journal entry's name is not a safe mailbox name") is { } kept ? $"moved to {kept}" : "removed")));
                continue;
            }
            try
            {
                foreach (var note in await MailboxAppender.RecoverAsync(shortName, current, locks, journal, cancellationToken).ConfigureAwait(false))
                {
                    LogRecovery(note);
                }
            }
#pragma warning disable CA1031 // one mailbox that cannot be settled must not stop Bridge (and everyone's mail) from starting
            catch (Exception ex) when (ex is not OperationCanceledException)
#pragma warning restore CA1031
            {
                LogRecoveryFailed(ex, shortName);
            }
        }
    }

    private void LogRecovery(RecoveryNote note)
    {
        if (note.Critical)
        {
            LogRecoveryProblem(note.Message);
        }
        else
        {
            LogRecovered(note.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "spool recovery: {Message}")]
    private partial void LogRecovered(string message);

    [LoggerMessage(Level = LogLevel.Critical, Message = "spool recovery: {Message}")]
    private partial void LogRecoveryProblem(string message);

    [LoggerMessage(Level = LogLevel.Critical, Message = "spool recovery: {Mailbox}: failed unexpectedly; settled before its next delivery")]
    private partial void LogRecoveryFailed(Exception exception, string mailbox);

    [LoggerMessage(Level = LogLevel.Critical, Message = "{QueueId}: rollback failed, the mailbox may hold a partial record: {Error}")]
    private partial void LogRollbackFailed(string queueId, string error);
}
