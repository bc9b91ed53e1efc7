// Job: after a store outage, move the mail that Bridge:Legacy:FallbackToSpool wrote to the spool on to the store, by
// itself (Bridge:Legacy:CollectAfterFallback, on by default with FallbackToSpool): every few seconds, each spool
// mailbox of a user whose mail goes to the store is collected (SpoolCollector: in arrival order, under the same locks as
// deliveries, each message given back as received, only what the store accepted removed), in batches of a few
// messages so deliveries to that mailbox never wait long for its locks. A store that is still down ends the round.
// How far the store got is in the journal after every message it accepts (CollectCursor): the next batch, the next
// round, or a restarted Bridge goes on from there, and the delivered messages leave the spool once, in place, when
// the mailbox's collection ends (or at the next start). Each round also finishes any collection that stopped
// part-way and will not go on because its user is in Spool mode now (whatever the fallback settings): what reached
// the store is cut from the spool, so no message stays in both.
// Failure: never throws; what a round could not do is logged, and the mail stays in the spool for the next round.
// A kill in the instant between the store's reply and the journal's note sends that one message twice (duplicates
// over loss, as drain); a power loss, every message since the batch began.
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery.Spool;
using Bridge.Delivery.Store;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bridge.Collection;

public sealed partial class FallbackCollector(LiveSettings settings, StoreClient store, InProcessMailboxLocks locks, AppendJournal journal, ILogger logger)
    : BackgroundService
{
    /// <summary>How often the spool is looked at while collection is on.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    /// <summary>Messages relayed per hold of a mailbox's locks.</summary>
    public const int Batch = 20;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Interval, stoppingToken).ConfigureAwait(false);
                await RoundAsync(settings.Current, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // a round that fails must not end collection (or the daemon): the mail waits for the next
            catch (Exception ex)
#pragma warning restore CA1031
            {
                LogRoundFailed(ex);
            }
        }
    }

    /// <summary>One pass over the spool; returns when everything collectable was moved or the store stopped answering.</summary>
    internal async Task RoundAsync(SettingsSnapshot snapshot, CancellationToken cancellationToken)
    {
        var options = snapshot.Options;
        bool Collectable(string name) => SpoolCollector.OwnerOf(snapshot, name)?.ModeIn(options.Mode) == BridgeMode.Legacy;

        // A collection that stopped part-way (a login's time limit, a cut that failed) and will not go on, since its
        // user is in Spool mode now: what it moved to the store is cut from the spool now, never left in both places.
        foreach (var name in journal.PendingOf(CollectCursor.Kind).Where(n => ShortName.IsSafeFileName(n) && !Collectable(n)).ToList())
        {
            foreach (var note in await AppendRecovery.SettleNowAsync(name, snapshot.Spool, locks, journal, cancellationToken).ConfigureAwait(false))
            {
                LogCollected(note.Message);
            }
        }
        if (!options.UsesStore || !options.Legacy.FallbackToSpool || !options.Legacy.CollectAfterFallback)
        {
            return;
        }
        foreach (var name in MailboxesWithMail(options.Spool.Directory))
        {
            if (!Collectable(name))
            {
                continue; // a spool-mode user's mailbox, or a file Bridge does not route: its mail stays where it is
            }
            while (!cancellationToken.IsCancellationRequested)
            {
                using var output = new StringWriter();
                var (ok, relayed, more, storeDown) = await SpoolCollector.DrainMailboxAsync(snapshot, store, name, locks, journal, dryRun: false, Batch, output, null, cancellationToken,
                    continues: true).ConfigureAwait(false);
                if (relayed > 0 || !ok)
                {
                    foreach (var line in output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    {
                        LogCollected(line);
                    }
                }
                if (storeDown)
                {
                    return; // the store is still down: the next round tries again
                }
                if (!ok)
                {
                    break; // this mailbox cannot be collected now (locked, unusable, refused): the others still are
                }
                if (!more)
                {
                    break;
                }
            }
        }
    }

    private static IEnumerable<string> MailboxesWithMail(string directory)
    {
        IEnumerable<FileInfo> files;
        try
        {
            files = new DirectoryInfo(directory).GetFiles().Where(f => f.Length > 0 && ShortName.IsSafeFileName(f.Name)).ToList();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
        return files.Select(f => f.Name).Order(StringComparer.Ordinal);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "collect after fallback: {Line}")]
    private partial void LogCollected(string line);

    [LoggerMessage(Level = LogLevel.Error, Message = "collect after fallback: a round failed unexpectedly; the mail stays in the spool for the next round")]
    private partial void LogRoundFailed(Exception exception);
}
