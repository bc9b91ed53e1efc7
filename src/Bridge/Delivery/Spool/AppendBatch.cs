// Job: THE append protocol, written once. N records into M mailboxes, each already a LockedMailbox:
//   admit -> journal -> append -> fsync -> forget, or truncate each mailbox back to where it started.
// The two policies, stated here and nowhere else:
// - Within one mailbox (the group commit: records of different messages), each record stands alone: a record over
//   Bridge:Spool:MaxMailboxBytes, or whose delivery was cancelled, is refused alone; a write error truncates back to
//   the start of the failing record, the records before it are kept (if their fsync succeeds), it and the ones after
//   it get the error; a failed fsync truncates the mailbox's whole batch.
// - Across the mailboxes of one message (AllOrNone): a mailbox over its size limit is refused alone (its recipients
//   get 552, the others the message); any other failure in any mailbox truncates every mailbox back to its start and
//   every record gets that failure, so a 4xx never leaves copies that the MTA's retry would duplicate.
// No byte is appended before the journal says, durably, where each mailbox's batch starts and ends and what its bytes
// are (AppendDigest), so an append cut short by a crash is settled by AppendRecovery before anything else is written.
// Failure: every record gets its own SpoolResult; nothing throws. A truncate that fails leaves the journal entry (the
// next open of that mailbox settles it) and a critical log line.
using Microsoft.Extensions.Logging;

namespace Bridge.Delivery.Spool;

internal sealed partial class AppendBatch(AppendJournal journal, ILogger logger, bool allOrNone)
{
    private readonly List<Item> _items = [];

    /// <summary>Queues a record for <paramref name="mailbox"/> (records of one mailbox are written in the order added).</summary>
    public void Add(LockedMailbox mailbox, MboxRecord record, CancellationToken cancellationToken) =>
        _items.Add(new Item(mailbox, record, cancellationToken));

    /// <summary>Writes what can be written; the result of each record, in the order added.</summary>
    public IReadOnlyList<SpoolResult> Commit(long maxMailboxBytes)
    {
        var results = new SpoolResult[_items.Count];
        var groups = _items.Select((item, index) => (item, index))
            .GroupBy(x => x.item.Mailbox)
            .Select(g => new Group(g.Key, [.. g.Select(x => x.index)]))
            .ToList();

        // Admit: a cancelled delivery and a record over the size limit are refused alone.
        foreach (var group in groups)
        {
            group.Accepted.RemoveAll(i =>
            {
                if (_items[i].CancellationToken.IsCancellationRequested)
                {
                    results[i] = SpoolResult.Stopping(); // its time is up (or Bridge stops): nothing is written for it
                    return true;
                }
                return false;
            });
            Admit(group, maxMailboxBytes, results);
        }
        if (allOrNone && results.Any(r => r.Problem == SpoolProblem.Stopping))
        {
            return Fail(groups, SpoolResult.Stopping(), results);
        }

        // Journal: no byte before its entry.
        foreach (var group in groups.Where(g => g.Accepted.Count > 0))
        {
            var rc = journal.Record(group.Mailbox.Name, group.Entry!);
            if (rc != 0)
            {
                var failure = SpoolErrno.Classify(rc, SpoolStep.Journal, group.Mailbox.Name, journal.Directory);
                if (allOrNone)
                {
                    return Fail(groups, failure, results);
                }
                Answer(group.Accepted, failure, results);
                group.Accepted.Clear();
                continue;
            }
            group.Journaled = true;
        }

        // Append.
        foreach (var group in groups.Where(g => g.Journaled))
        {
            for (var k = 0; k < group.Accepted.Count; k++)
            {
                var appended = group.Mailbox.Append(_items[group.Accepted[k]].Record);
                group.Written = true;
                if (appended.IsOk)
                {
                    continue;
                }
                if (allOrNone)
                {
                    return Fail(groups, appended, results);
                }
                var cut = group.Mailbox.TruncateTo(group.Starts[k], sync: false);
                if (!cut.IsOk)
                {
                    LogRollbackFailed(group.Mailbox.Name, cut.Detail); // the journal entry stays: settled before the next delivery
                    Answer(group.Accepted, appended, results);
                    group.Accepted.Clear();
                    group.Journaled = false;
                    break;
                }
                Answer(group.Accepted.Skip(k), appended, results);
                group.Accepted.RemoveRange(k, group.Accepted.Count - k);
                break;
            }
        }

        // Fsync, then forget.
        foreach (var group in groups.Where(g => g.Journaled))
        {
            var durable = group.Mailbox.Sync();
            if (!durable.IsOk)
            {
                if (allOrNone)
                {
                    return Fail(groups, durable, results);
                }
                RollBack(group);
                Answer(group.Accepted, durable, results);
                group.Accepted.Clear();
            }
        }
        foreach (var group in groups.Where(g => g.Journaled))
        {
            journal.Forget(group.Mailbox.Name);
            Answer(group.Accepted, SpoolResult.Ok, results);
        }
        return results;
    }

    /// <summary>Refuses the records that would take the mailbox over the limit, and makes the journal entry of the rest.</summary>
    private void Admit(Group group, long maxMailboxBytes, SpoolResult[] results)
    {
        if (group.Accepted.Count == 0)
        {
            return;
        }
        var before = group.Before;
        var records = group.Accepted.Select(i => _items[i].Record).ToList();
        var entry = AppendDigest.EntryFor(group.Mailbox.Stat, before, records, out var lengths);
        var refused = false;
        var end = before;
        var kept = new List<int>(group.Accepted.Count);
        for (var k = 0; k < group.Accepted.Count; k++)
        {
            if (maxMailboxBytes > 0 && end + lengths[k] > maxMailboxBytes)
            {
                results[group.Accepted[k]] = SpoolResult.Full(group.Mailbox.Name);
                refused = true;
                continue;
            }
            kept.Add(group.Accepted[k]);
            group.Starts.Add(end);
            end += lengths[k];
        }
        group.Accepted.Clear();
        group.Accepted.AddRange(kept);
        // The digest covers the bytes in the order they will be written: again without the refused records.
        group.Entry = !refused ? entry
            : kept.Count > 0 ? AppendDigest.EntryFor(group.Mailbox.Stat, before, [.. kept.Select(i => _items[i].Record)], out _)
            : null;
    }

    /// <summary>All or none failed: every mailbox back to its start, every record still standing gets the failure.</summary>
    private SpoolResult[] Fail(List<Group> groups, SpoolResult failure, SpoolResult[] results)
    {
        foreach (var group in groups)
        {
            if (group.Journaled)
            {
                RollBack(group);
            }
            Answer(group.Accepted, failure, results);
        }
        return results;
    }

    /// <summary>Truncates a journaled mailbox back to where the batch started; the entry goes only when that is durable.</summary>
    private void RollBack(Group group)
    {
        group.Journaled = false;
        if (group.Written)
        {
            var cut = group.Mailbox.TruncateTo(group.Before, sync: true);
            if (!cut.IsOk)
            {
                LogRollbackFailed(group.Mailbox.Name, cut.Detail); // the journal entry stays: settled before the next delivery
                return;
            }
        }
        journal.Forget(group.Mailbox.Name);
    }

    private static void Answer(IEnumerable<int> indexes, SpoolResult result, SpoolResult[] results)
    {
        foreach (var i in indexes)
        {
            results[i] = result;
        }
    }

    [LoggerMessage(Level = LogLevel.Critical, Message = "{Mailbox}: rollback failed, the mailbox may hold a partial record: {Error}")]
    private partial void LogRollbackFailed(string mailbox, string error);

    private sealed record Item(LockedMailbox Mailbox, MboxRecord Record, CancellationToken CancellationToken);

    private sealed class Group(LockedMailbox mailbox, List<int> accepted)
    {
        public LockedMailbox Mailbox { get; } = mailbox;

        /// <summary>The end of the file before this batch: where a rollback cuts back to.</summary>
        public long Before { get; } = mailbox.End;

        /// <summary>Indexes of the records still to be written (and answered Ok at the end).</summary>
        public List<int> Accepted { get; } = accepted;

        /// <summary>Where each accepted record starts in the file.</summary>
        public List<long> Starts { get; } = [];

        public AppendJournalEntry? Entry { get; set; }

        public bool Journaled { get; set; }

        public bool Written { get; set; }
    }
}
