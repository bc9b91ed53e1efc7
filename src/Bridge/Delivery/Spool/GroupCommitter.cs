// Job: group commit for deliveries that each need one mailbox. Each queues its record for that mailbox; one
// drain per mailbox at a time takes everything queued, locks the mailbox once (LockedMailbox) and writes the whole
// batch with the append protocol (AppendBatch: one journal entry, every record appended, one fsync), then answers
// each delivery.
// While one batch waits for its fsync the next one gathers, so under load the cost of locking, journalling
// and fsync is shared by many messages, and every "250" still comes after the fsync of its own record.
// Failure: every delivery gets its own SpoolResult, by AppendBatch's one-mailbox policy (a record over the size
// limit or out of time is refused alone; a write error keeps the records before it). Nothing escapes as an
// exception: a bug in a drain answers its batch 451 4.3.0 and is logged.
using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Bridge.Delivery.Spool;

/// <param name="onRecovery">Told what recovery did when a batch locked a mailbox (the spool agent logs it).</param>
internal sealed partial class GroupCommitter(InProcessMailboxLocks locks, AppendJournal journal, ILogger logger, Action<RecoveryNote> onRecovery)
{
    /// <summary>Most records in one batch (where each ends inside a page is listed in its journal entry, v3).</summary>
    public const int MaxBatch = 64;

    private readonly ConcurrentDictionary<string, MailboxQueue> _queues = new(StringComparer.Ordinal);

    /// <summary>Batches committed so far (for tests and metrics).</summary>
    public long Batches => Interlocked.Read(ref _batches);

    private long _batches;

    public Task<SpoolResult> AppendAsync(string shortName, uint uid, string queueId, MboxRecord record, SpoolSettings settings,
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
                    pending.Answer(SpoolResult.Failed(queue.ShortName, "internal error while appending to the mailbox"));
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
        var opened = await LockedMailbox
            .OpenForDeliveryAsync(shortName, first.Uid, settings, locks, journal, cancellationToken).ConfigureAwait(false);
        foreach (var note in opened.Notes)
        {
            onRecovery(note);
        }
        if (opened.Mailbox is not { } mailbox)
        {
            AnswerAll(batch, opened.Result);
            return;
        }
        using (mailbox)
        {
            var appends = new AppendBatch(journal, logger, allOrNone: false);
            var members = new List<PendingAppend>(batch.Count);
            foreach (var pending in batch)
            {
                if (pending.Uid != first.Uid)
                {
                    pending.Answer(SpoolResult.Retry(shortName, "mailbox owner changed while queued, try again"));
                    continue;
                }
                appends.Add(mailbox, pending.Record, pending.CancellationToken);
                members.Add(pending);
            }
            var results = appends.Commit(settings.MaxMailboxBytes);
            if (results.Any(r => r.IsOk))
            {
                Interlocked.Increment(ref _batches);
            }
            for (var i = 0; i < members.Count; i++)
            {
                members[i].Answer(results[i]);
            }
        }
    }

    private static void AnswerAll(IEnumerable<PendingAppend> batch, SpoolResult status)
    {
        foreach (var pending in batch)
        {
            pending.Answer(status);
        }
    }

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

        public TaskCompletionSource<SpoolResult> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Answer(SpoolResult status) => Done.TrySetResult(status);
    }
}
