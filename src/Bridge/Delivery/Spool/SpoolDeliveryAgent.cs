// Job: Spool mode's delivery agent: one message into the /var/mail mbox of every recipient. One copy per mailbox
// (the first recipient that resolved to it names X-Original-To: its ORCPT when the client gave one, else its RCPT
// address); a mailbox refused for good (an unsafe name, a
// Delivered-To loop, over Bridge:Spool:MaxMailboxBytes) is left out and reported for its recipients alone, so the
// others still get the message and the sender a notification. A message for one mailbox (the common case: Postfix
// sends one recipient per transaction) goes through the GroupCommitter, which shares the lock, journal entry and
// fsync with concurrent deliveries to that mailbox, and so does each mailbox of a PerRecipient request (LMTP: each
// answered on its own). A message for several mailboxes otherwise is written all or none (AppendBatch) under all their
// locks, taken in rounds that never wait while holding a lock (no deadlock between sessions, and no local user who
// keeps their own mailbox locked can keep another's locked by sending to both). This is the boundary where a
// SpoolResult becomes the reply (SpoolResult.ToStatus).
// Failure: a DeliveryStatus per recipient; never throws for a delivery problem.
using Bridge.Common;
using Microsoft.Extensions.Logging;

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

    /// <summary>How an outcome's Relay names the spool ("spool:/var/mail"): the dispatcher tells the spool's deliveries by it.</summary>
    public const string RelayPrefix = "spool:";

    public async Task<DeliveryResult> DeliverAsync(DeliveryRequest request, CancellationToken cancellationToken)
    {
        var current = settings();
        var byMailbox = await DeliverAllAsync(request, current, cancellationToken).ConfigureAwait(false);
        var relay = RelayPrefix + current.Directory;
        var outcomes = request.Recipients
            .Select(r => new RecipientOutcome(r, byMailbox[r.User.ShortName], relay, 1))
            .ToList();
        return DeliveryResult.Compose(request.QueueId, outcomes);
    }

    /// <summary>The status of each mailbox (by short name) the message was for.</summary>
    private async Task<Dictionary<string, DeliveryStatus>> DeliverAllAsync(DeliveryRequest request, SpoolSettings current,
        CancellationToken cancellationToken)
    {
        var statuses = new Dictionary<string, DeliveryStatus>(StringComparer.Ordinal);
        var targets = request.Recipients
            .GroupBy(r => r.User.ShortName, StringComparer.Ordinal)
            .Select(g => g.First())
            .OrderBy(r => r.User.ShortName, StringComparer.Ordinal)
            .ToList();
        foreach (var target in targets)
        {
            if (!ShortName.IsSafeFileName(target.User.ShortName))
            {
                statuses[target.User.ShortName] = new DeliveryStatus(550, "5.1.3", $"<{target.Address}>: short name is not a safe spool file name");
            }
            else if (request.Headers.DeliveredTo.Contains(target.DeliveredTo, StringComparer.OrdinalIgnoreCase))
            {
                statuses[target.User.ShortName] = DeliveryStatus.Loop(target.DeliveredTo);
            }
        }
        targets.RemoveAll(t => statuses.ContainsKey(t.User.ShortName));

        var now = DateTime.Now;
        if (targets.Count == 1 || (targets.Count > 1 && request.PerRecipient))
        {
            // Each mailbox on its own: no lock is held while another is waited for, and each shares its commit.
            var results = await Task.WhenAll(targets.Select(target => committer.AppendAsync(target.User.ShortName, target.User.MailboxOwner,
                request.QueueId, new MboxRecord(request.Sender, target.OriginalRecipient, target.DeliveredTo, now, request.ReceivedHeader,
                    request.Message, current.Format), current, cancellationToken))).ConfigureAwait(false);
            for (var i = 0; i < targets.Count; i++)
            {
                statuses[targets[i].User.ShortName] = results[i].ToStatus(request.QueueId, current.DeferWhenFull);
            }
        }
        else if (targets.Count > 1)
        {
            // Locks, writes and fsyncs block the thread: never on a socket event thread (Hosting/SocketThreads.cs).
            var results = await Task.Run(() => AppendToEachAsync(request, targets, now, current, cancellationToken), CancellationToken.None)
                .ConfigureAwait(false);
            for (var i = 0; i < targets.Count; i++)
            {
                statuses[targets[i].User.ShortName] = results[i].ToStatus(request.QueueId, current.DeferWhenFull);
            }
        }
        return statuses;
    }

    /// <summary>Locks every mailbox, then one AppendBatch, all or none. The result per target. The locks are taken in
    /// rounds: the first mailbox of a round is waited for (holding nothing), the others only tried; one that is busy
    /// ends the round, every lock is given back, and the next round waits for that one first (so a mailbox that
    /// single deliveries keep busy is waited for in its turn, not missed again and again), until LockTimeout.
    /// Waiting for a later lock while holding the earlier ones would let any local user who holds their own mailbox's
    /// lock and sends messages to someone else and themselves keep that someone's mailbox locked, for Bridge and their
    /// mail programs alike, for as long as they like.</summary>
    private async Task<IReadOnlyList<SpoolResult>> AppendToEachAsync(DeliveryRequest request, List<RoutedRecipient> targets, DateTime now,
        SpoolSettings current, CancellationToken cancellationToken)
    {
        var opened = new LockedMailbox?[targets.Count];
        var deadline = DateTime.UtcNow + current.LockTimeout;
        var noWait = current with { LockTimeout = TimeSpan.Zero };
        var waitFirst = 0;
        try
        {
            while (true)
            {
                var busy = -1;
                foreach (var i in new[] { waitFirst }.Concat(Enumerable.Range(0, targets.Count).Where(k => k != waitFirst)))
                {
                    var target = targets[i];
                    var wait = i == waitFirst ? current with { LockTimeout = Max(deadline - DateTime.UtcNow, TimeSpan.Zero) } : noWait;
                    var open = await LockedMailbox.OpenForDeliveryAsync(target.User.ShortName, target.User.MailboxOwner, wait,
                        locks, journal, cancellationToken).ConfigureAwait(false);
                    foreach (var note in open.Notes)
                    {
                        LogRecovery(note);
                    }
                    if (open.Mailbox is null && open.Result.Problem == SpoolProblem.Busy && i != waitFirst && DateTime.UtcNow < deadline)
                    {
                        busy = i;
                        break;
                    }
                    if (open.Mailbox is null)
                    {
                        return [.. targets.Select(_ => open.Result)]; // all or none: nothing is written when one mailbox cannot be opened
                    }
                    opened[i] = open.Mailbox;
                }
                if (busy < 0)
                {
                    break;
                }
                Release(opened); // nothing held while the busy one is waited for, first in the next round
                waitFirst = busy;
            }
            var batch = new AppendBatch(journal, logger, allOrNone: true);
            for (var i = 0; i < targets.Count; i++)
            {
                var target = targets[i];
                batch.Add(opened[i]!, new MboxRecord(request.Sender, target.OriginalRecipient, target.DeliveredTo, now, request.ReceivedHeader,
                    request.Message, current.Format), cancellationToken);
            }
            return batch.Commit(current.MaxMailboxBytes);
        }
        finally
        {
            Release(opened);
        }
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private static void Release(LockedMailbox?[] opened)
    {
        for (var i = opened.Length - 1; i >= 0; i--)
        {
            opened[i]?.Dispose();
            opened[i] = null;
        }
    }

    /// <summary>At start, before Bridge listens: settle every append a crash interrupted.</summary>
    public async Task RecoverAsync(CancellationToken cancellationToken)
    {
        var current = settings();
        foreach (var note in await AppendRecovery.SettleAllAsync(current, locks, journal, cancellationToken).ConfigureAwait(false))
        {
            LogRecovery(note);
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
}
