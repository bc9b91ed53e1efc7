// Job: `mailbridge drain [--user NAME] [--dry-run]`: what the Mac OS X mail store did at login, for every user's spool
// (or one): take the waiting mail out of /var/mail and deliver it to the store (Legacy target), to move from Spool to
// Legacy mode without losing what was spooled. Each mailbox is collected by SpoolCollector (the daemon's collectors
// run the same code) through its own StoreClient; --dry-run only lists.
// Failure: a mailbox that cannot be drained keeps all its mail and makes the exit code 1; a kill between the store's
// acceptance and the cursor (a moment) sends that one message again, never loses one.
using Bridge.Collection;
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery.Spool;
using Bridge.Delivery.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bridge.Operations;

public static class SpoolDrain
{
    public static async Task<int> RunAsync(SettingsSnapshot snapshot, string? user, bool dryRun, TextWriter output, CancellationToken cancellationToken)
    {
        var options = snapshot.Options;
        if (string.IsNullOrWhiteSpace(options.Legacy.Host))
        {
            await output.WriteLineAsync("drain: set Bridge:Legacy:Host (and Port, Protocol): drain delivers to the mail store").ConfigureAwait(false);
            return 78;
        }
        var names = user is not null
            ? [user.ToLowerInvariant()]
            : Directory.GetFiles(options.Spool.Directory).Select(Path.GetFileName).OfType<string>().Where(ShortName.IsSafeFileName)
                .Where(n => SpoolCollector.OwnerOf(snapshot, n) is not null) // users' mailboxes only
                .Order().ToList();
        var journal = new AppendJournal(options.Spool.JournalDirectory);
        await using var pool = new StoreConnectionPool();
        var store = new StoreClient(() => snapshot.Store, pool, null, NullLogger.Instance);
        var locks = new InProcessMailboxLocks();
        var failed = 0;
        foreach (var name in names)
        {
            if (!(await SpoolCollector.DrainMailboxAsync(snapshot, store, name, locks, journal, dryRun, int.MaxValue, output, null, cancellationToken).ConfigureAwait(false)).Ok)
            {
                failed++;
            }
        }
        return failed > 0 ? 1 : 0;
    }
}
