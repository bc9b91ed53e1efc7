// Job: the journal part of `mailbridge check`: Bridge:Spool:JournalDirectory is writable (or will be created), its
// ownership and mode are what the daemon accepts at start (AppendJournal.Prepare), and no entry crash recovery set
// aside is waiting for the administrator.
// Failure: none thrown; every problem is a Finding with its fix.
using Bridge.Configuration;
using Bridge.Delivery.Spool;

namespace Bridge.Operations;

internal static class JournalCheck
{
    public static IEnumerable<Finding> Run(SpoolOptions spool)
    {
        yield return WritableDirectoryCheck.Run("journal", spool.JournalDirectory, "Bridge:Spool:JournalDirectory");
        if (Directory.Exists(spool.JournalDirectory) && new AppendJournal(spool.JournalDirectory).Prepare() is { } journalProblem)
        {
            yield return new Finding(Level.Fail, $"journal {spool.JournalDirectory}", journalProblem, "Bridge refuses to start with it so");
        }
        foreach (var finding in CheckKeptJournalEntries(spool))
        {
            yield return finding;
        }
    }

    /// <summary>Append journal entries crash recovery could not settle (Delivery/Spool/AppendRecovery): FAIL when the
    /// mailbox may hold a partial record beside other mail, WARN when only the entry itself was unreadable.</summary>
    private static IEnumerable<Finding> CheckKeptJournalEntries(SpoolOptions spool)
    {
        foreach (var kept in new AppendJournal(spool.JournalDirectory).KeptEntries())
        {
            var mailbox = Path.Combine(spool.Directory, kept.Mailbox);
            yield return kept.Critical
                ? new Finding(Level.Fail, $"mailbox {kept.Mailbox}", $"crash recovery kept everything in {mailbox}: {kept.Why}",
                    $"look at {mailbox} where the record named in {kept.File} starts (a reader may merge it with the next message), then remove {kept.File} and its .why file")
                : new Finding(Level.Warn, $"mailbox {kept.Mailbox}", $"an append journal entry was set aside: {kept.Why}",
                    $"check that the last message in {mailbox} is whole, then remove {kept.File} and its .why file");
        }
    }
}
