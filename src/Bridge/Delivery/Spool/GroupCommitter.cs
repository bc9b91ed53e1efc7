// Job: group commit for deliveries that each need one mailbox. Each queues its record for that mailbox; one
// drain per mailbox at a time takes everything queued, locks the mailbox once (MailboxAppender), journals the
// whole batch in one AppendJournal entry, appends every record and fsyncs once, then answers each delivery.
// While one batch waits for its fsync the next one gathers, so under load the cost of locking, journalling
// and fsync is shared by many messages, and every "250" still comes after the fsync of its own record.
// Failure: every delivery gets its own DeliveryStatus. Over Bridge:Spool:MaxMailboxBytes: that record alone is
// refused (552 5.2.2). A write error truncates back to the start of the failing record: the records before it
// are kept (if their fsync succeeds), it and the ones after it get the error. A failed fsync truncates the
// whole batch. Nothing escapes as an exception: a bug in a drain answers its batch 451 4.3.0 and is logged.
using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Bridge.Common;

namespace Bridge.Delivery.Spool;

/// <param name="onRecovery">Told what recovery did when a batch locked a mailbox (the spool agent logs it).</param>
internal sealed partial class GroupCommitter(InProcessMailboxLocks locks, AppendJournal journal, ILogger logger, Action<RecoveryNote> onRecovery)
{
    /// <summary>Most records in one batch (their later starts are listed in the journal entry).</summary>
    public const int MaxBatch = 64;

    private readonly ConcurrentDictionary<string, MailboxQueue> _queues = new(StringComparer.Ordinal);

    /// <summary>Batches committed so far (for tests and metrics).</summary>
    public long Batches => Interlocked.Read(ref _batches);

    private long _batches;

    public Task<DeliveryStatus> AppendAsync(string shortName, uint uid, string queueId, MboxRecord record, SpoolSettings settings,
        CancellationToken cancellationToken)
    {
        var queue = _queues.GetOrAdd(shortName, name => new MailboxQueue(name));
        var pending = new PendingAppend(uid, queueId, record, settings, cancellationToken);
        bool startDrain;
        lock (queue)
        {
            queue.Waiting.Add(pending);
            startDrain = !queue.Draining;
            queue.Draining = true;
        }
        if (startDrain)
        {
            _ = Task.Run(() => DrainAsync(queue), CancellationToken.None);
        }
        return pending.Done.Task;
    }

    private async Task DrainAsync(MailboxQueue queue)
    {
        while (true)
        {
            List<PendingAppend> batch;
            lock (queue)
            {
                if (queue.Waiting.Count == 0)
                {
                    queue.Draining = false;
                    return;
                }
                var take = Math.Min(queue.Waiting.Count, MaxBatch);
                batch = queue.Waiting.GetRange(0, take);
                queue.Waiting.RemoveRange(0, take);
            }
            try
            {
                await CommitAsync(queue.ShortName, batch).ConfigureAwait(false);
            }
#pragma warning disable CA1031 // the last line of defence: a delivery must get an answer, never hang
            catch (Exception ex)
#pragma warning restore CA1031
            {
                LogDrainFailed(ex, queue.ShortName);
                foreach (var pending in batch)
                {
                    pending.Answer(DeliveryStatus.LocalError("internal error while appending to the mailbox"));
                }
            }
        }
    }

    private async Task CommitAsync(string shortName, List<PendingAppend> batch)
    {
        var first = batch[0];
        var settings = first.Settings;
        // The lock wait ends early only when every delivery of the batch is cancelled (shutdown, or each one's
        // Bridge:DeliveryTimeout): one message's time limit must not cost the others their turn.
        using var allCancelled = new CancellationTokenSource();
        var waiting = batch.Count;
        var registrations = batch.Select(p => p.CancellationToken.Register(() =>
        {
            if (Interlocked.Decrement(ref waiting) == 0)
            {
                allCancelled.Cancel();
            }
        })).ToList();
        try
        {
            await CommitLockedAsync(shortName, batch, first, settings, allCancelled.Token).ConfigureAwait(false);
        }
        finally
        {
            registrations.ForEach(r => r.Dispose());
        }
    }

    private async Task CommitLockedAsync(string shortName, List<PendingAppend> batch, PendingAppend first, SpoolSettings settings,
        CancellationToken cancellationToken)
    {
        var (appender, status) = await MailboxAppender
            .OpenAsync(shortName, first.Uid, settings, locks, journal, cancellationToken).ConfigureAwait(false);
        if (appender is null)
        {
            AnswerAll(batch, status);
            return;
        }
        using (appender)
        {
            foreach (var note in appender.Notes)
            {
                onRecovery(note);
            }
            var accepted = new List<PendingAppend>(batch.Count);
            var starts = new List<long>(batch.Count);
            var end = appender.OriginalSize;
            foreach (var pending in batch)
            {
                var length = pending.Record.Length;
                if (pending.CancellationToken.IsCancellationRequested)
                {
                    pending.Answer(MailboxAppender.ShuttingDown()); // its time is up (or Bridge stops): nothing is written for it
                }
                else if (pending.Uid != first.Uid)
                {
                    pending.Answer(DeliveryStatus.Deferred("mailbox owner changed while queued, try again"));
                }
                else if (settings.MaxMailboxBytes > 0 && end + length > settings.MaxMailboxBytes)
                {
                    pending.Answer(DeliveryStatus.MailboxFull(shortName));
                }
                else
                {
                    accepted.Add(pending);
                    starts.Add(end);
                    end += length;
                }
            }
            if (accepted.Count == 0)
            {
                return;
            }
            Interlocked.Increment(ref _batches);

            // No byte is appended before the journal says where the batch starts and ends, and what its bytes are.
            var entry = AppendDigest.EntryFor(appender.Stat, appender.OriginalSize, accepted.Select(a => a.Record));
            var rc = journal.Record(shortName, entry);
            if (rc != 0)
            {
                AnswerAll(accepted, Errno.JournalStatus(rc, journal.Directory));
                return;
            }

            for (var i = 0; i < accepted.Count; i++)
            {
                var appended = appender.Append(accepted[i].Record);
                if (appended.IsSuccess)
                {
                    continue;
                }
                var cut = appender.TruncateTo(starts[i]);
                if (cut is not null)
                {
                    LogRollbackFailed(shortName, cut); // the journal entry stays: recovery truncates before the next delivery
                    AnswerAll(accepted, appended);
                    return;
                }
                AnswerAll(accepted.GetRange(i, accepted.Count - i), appended);
                accepted.RemoveRange(i, accepted.Count - i);
                break;
            }

            var durable = appender.Commit();
            if (!durable.IsSuccess)
            {
                var error = appender.Rollback();
                if (error is not null)
                {
                    LogRollbackFailed(shortName, error);
                }
                else
                {
                    journal.Forget(shortName);
                }
                AnswerAll(accepted, durable);
                return;
            }
            journal.Forget(shortName);
            foreach (var pending in accepted)
            {
                pending.Answer(DeliveryStatus.Delivered(pending.QueueId));
            }
        }
    }

    private static void AnswerAll(IEnumerable<PendingAppend> batch, DeliveryStatus status)
    {
        foreach (var pending in batch)
        {
            pending.Answer(status);
        }
    }

    [LoggerMessage(Level = LogLevel.Critical, Message = "{Mailbox}: rollback failed, the mailbox may hold a partial record: {Error}")]
    private partial void LogRollbackFailed(string mailbox, string error);

    [LoggerMessage(Level = LogLevel.Critical, Message = "{Mailbox}: group commit failed unexpectedly; its deliveries were deferred")]
    private partial void LogDrainFailed(Exception exception, string mailbox);

    private sealed class MailboxQueue(string shortName)
    {
        public string ShortName { get; } = shortName;

        public List<PendingAppend> Waiting { get; } = [];

        public bool Draining { get; set; }
    }

    private sealed class PendingAppend(uint uid, string queueId, MboxRecord record, SpoolSettings settings, CancellationToken cancellationToken)
    {
        public uint Uid { get; } = uid;

        public string QueueId { get; } = queueId;

        public MboxRecord Record { get; } = record;

        public SpoolSettings Settings { get; } = settings;

        public CancellationToken CancellationToken { get; } = cancellationToken;

        public TaskCompletionSource<DeliveryStatus> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Answer(DeliveryStatus status) => Done.TrySetResult(status);
    }
}
