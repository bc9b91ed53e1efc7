// Job: settle the journal entry of an append that a crash interrupted, with the mailbox's locks held, removing only
// bytes Bridge can prove it wrote (their page hashes match the entry's), never a byte of anyone else's:
// - every page verifies up to the entry's end: the append was complete; it stays.
// - the verified pages run to the end of the file: all of it is Bridge's unfinished append; truncated away.
// - verified pages are followed by another writer's record ("From ", maybe after the newline that writer added to
//   end Bridge's cut-off line): Bridge's partial bytes are cut out in place (MailboxCut: the inode stays, so a writer
//   that opened the mailbox before still writes into the file everyone reads), so no reader merges the other
//   writer's message into a half one, and not one of the other writer's bytes is lost.
// - an entry torn while it was written: its append never began; the entry is removed. One that cannot be read for a
//   passing reason (out of descriptors or memory) is left for the next try, the mailbox deferred until then.
// - anything else (bytes Bridge cannot attribute, a mailbox it cannot read): everything is kept, the entry is moved
//   to the journal's kept/ folder with the reason, and a critical note says so (`mailbridge check` reports it).
// Failure: never throws; what it did or could not do is a RecoveryNote. A failed truncate keeps the entry, so
// recovery runs again before the next delivery.
using Bridge.Common;
using Bridge.Native;

namespace Bridge.Delivery.Spool;

public sealed record RecoveryNote(bool Critical, string Message);

/// <param name="Unsettled">The entry is still there (it could not be settled now): nothing may be appended before it is,
/// or the append's own journal entry would replace it.</param>
internal readonly record struct RecoveryResult(RecoveryNote? Note, bool Unsettled = false);

internal static class AppendRecovery
{
    /// <summary>At start, before Bridge listens: every entry a crash left, settled under its mailbox's locks. Never
    /// throws: a mailbox that cannot be settled now is a note, and its entry is settled before its next delivery.</summary>
    public static async Task<IReadOnlyList<RecoveryNote>> SettleAllAsync(SpoolSettings settings, InProcessMailboxLocks locks, AppendJournal journal,
        CancellationToken cancellationToken)
    {
        var notes = new List<RecoveryNote>();
        foreach (var shortName in journal.Pending().Concat(journal.PendingOf(MailboxCut.Kind)).Concat(journal.PendingOf(CollectCursor.Kind))
            .Distinct(StringComparer.Ordinal))
        {
            if (!ShortName.IsSafeFileName(shortName))
            {
                notes.Add(new RecoveryNote(false, $"{shortName}: not a mailbox name Bridge writes; " +
                    (journal.Keep(shortName, "the journal entry's name is not a safe mailbox name") is { } kept ? $"moved to {kept}" : "removed")));
                continue;
            }
            try
            {
                notes.AddRange(await SettleAtStartAsync(shortName, settings, locks, journal, cancellationToken).ConfigureAwait(false));
            }
#pragma warning disable CA1031 // one mailbox that cannot be settled must not stop Bridge (and everyone's mail) from starting
            catch (Exception ex) when (ex is not OperationCanceledException)
#pragma warning restore CA1031
            {
                notes.Add(new RecoveryNote(true, $"{shortName}: failed unexpectedly ({ex.GetType().Name}: {ex.Message}); settled before its next delivery"));
            }
        }
        return notes;
    }

    /// <summary>Settles one mailbox's entries now, as at start: a collection cursor left between two batches (the user
    /// was moved to Spool mode meanwhile, so no batch goes on) has its collected prefix cut, so no message stays both
    /// in the store and in the spool.</summary>
    public static Task<IReadOnlyList<RecoveryNote>> SettleNowAsync(string shortName, SpoolSettings settings, InProcessMailboxLocks locks,
        AppendJournal journal, CancellationToken cancellationToken) =>
        SettleAtStartAsync(shortName, settings, locks, journal, cancellationToken);

    private static async Task<IReadOnlyList<RecoveryNote>> SettleAtStartAsync(string shortName, SpoolSettings settings, InProcessMailboxLocks locks,
        AppendJournal journal, CancellationToken cancellationToken)
    {
        var opened = await LockedMailbox.OpenExistingAsync(shortName, null, settings, locks, journal, cancellationToken).ConfigureAwait(false);
        if (opened.Mailbox is { } mailbox)
        {
            using (mailbox) // opening settled the append and cut entries under the locks
            {
                return CutCollected(mailbox, journal) is { } collected ? [.. opened.Notes, collected] : opened.Notes;
            }
        }
        if (Libc.Lstat(System.IO.Path.Combine(settings.Directory, shortName), out _) != 0 && Libc.LastError == Libc.ENOENT)
        {
            journal.Forget(shortName); // no such mailbox (any more): nothing of ours to clean up
            journal.ForgetEntry(shortName, MailboxCut.Kind);
            CollectCursor.Forget(journal, shortName);
            return opened.Notes;
        }
        return [.. opened.Notes, new RecoveryNote(true, $"{shortName}: could not lock the mailbox to check an append interrupted by a crash ({opened.Result}); will retry before its next delivery")];
    }

    /// <summary>A collection that a stop or a crash ended between two batches left its cursor: the messages before it
    /// are in the store, so they are cut out of the spool now (as the collection would have at its end).</summary>
    private static RecoveryNote? CutCollected(LockedMailbox mailbox, AppendJournal journal)
    {
        var reader = mailbox.OpenReader();
        if (reader < 0)
        {
            return null;
        }
        try
        {
            var cursor = CollectCursor.Find(journal, mailbox.Name, reader, out var dropped);
            if (cursor is null)
            {
                return dropped is null ? null : new RecoveryNote(false, $"{mailbox.Name}: {dropped}");
            }
            var error = MailboxCut.Remove(mailbox.Fd, mailbox.Path, mailbox.Name, 0, cursor.End, journal,
                committed: () => CollectCursor.Forget(journal, mailbox.Name));
            if (error is not null)
            {
                return new RecoveryNote(true, $"{mailbox.Name}: the {cursor.End} bytes already moved to the store could not be removed yet ({error})");
            }
            return new RecoveryNote(false, $"{mailbox.Name}: removed the {cursor.End} bytes of mail a collection had moved to the store before it stopped");
        }
        finally
        {
            Libc.Close(reader);
        }
    }

    public static RecoveryResult Settle(int fd, string path, string name, AppendJournal journal)
    {
        var lookup = journal.Find(name);
        if (lookup.Entry is not { } entry)
        {
            if (lookup.Transient)
            {
                return new RecoveryResult(new RecoveryNote(true, $"{name}: cannot read the journal entry of an interrupted append now " +
                    $"({lookup.Problem}); will retry before its next delivery"), Unsettled: true);
            }
            if (lookup.Torn)
            {
                journal.Forget(name);
                return new RecoveryResult(new RecoveryNote(false, $"{name}: removed an append journal entry torn while it was written " +
                    "(Bridge stopped before that append began; the mailbox was not touched)"));
            }
            return lookup.Problem is { } problem ? Keep(journal, name, $"unreadable append journal entry ({problem})", critical: false) : default;
        }
        if (Libc.Fstat(fd, out var now) != 0)
        {
            return new RecoveryResult(new RecoveryNote(true, $"{name}: cannot stat the mailbox to settle an interrupted append: {Libc.Describe(Libc.LastError)}"), Unsettled: true);
        }
        if (now.Device != entry.Device || now.Inode != entry.Inode || now.Size <= entry.Before)
        {
            journal.Forget(name); // another file now, or nothing of the append reached the file
            return default;
        }
        var reader = Libc.Open(path, Libc.O_RDONLY | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0); // OFD locks survive closing it
        if (reader < 0 || Libc.Fstat(reader, out var readerStat) != 0 || !readerStat.SameFileAs(now))
        {
            var why = reader < 0 ? Libc.Describe(Libc.LastError) : "the path no longer names the locked mailbox";
            if (reader >= 0)
            {
                Libc.Close(reader);
            }
            return new RecoveryResult(new RecoveryNote(true, $"{name}: cannot read the mailbox to settle an interrupted append: {why}; will retry before its next delivery"), Unsettled: true);
        }
        try
        {
            return Settle(fd, reader, path, name, journal, entry, now);
        }
        finally
        {
            Libc.Close(reader);
        }
    }

    private static RecoveryResult Settle(int fd, int reader, string path, string name, AppendJournal journal, AppendJournalEntry entry, FileStat now)
    {
        var verified = VerifiedEnd(reader, entry, now.Size, out var readError);
        if (readError is not null)
        {
            return new RecoveryResult(new RecoveryNote(true, $"{name}: cannot read the mailbox to settle an interrupted append: {readError}; will retry before its next delivery"), Unsettled: true);
        }
        if (verified == entry.After)
        {
            journal.Forget(name); // complete: only its fsync or the journal's removal was cut short
            return default;
        }
        var ours = verified - entry.Before;
        if (verified == now.Size)
        {
            if (Libc.Ftruncate(fd, entry.Before) != 0 || Libc.Fsync(fd) != 0)
            {
                return new RecoveryResult(new RecoveryNote(true, $"{name}: cannot truncate an incomplete record left by a crash: {Libc.Describe(Libc.LastError)}"), Unsettled: true);
            }
            journal.Forget(name);
            return new RecoveryResult(new RecoveryNote(false,
                $"{name}: removed an incomplete record of {ours} bytes left by a crash (mailbox back to {entry.Before} bytes)"));
        }
        var foreign = ForeignRecordAt(reader, verified, now.Size);
        if (foreign >= 0 && ours == 0)
        {
            journal.Forget(name); // nothing of the append reached the file; another program's mail starts there
            return default;
        }
        if (foreign >= 0)
        {
            var error = MailboxCut.Remove(fd, path, name, entry.Before, verified, journal);
            if (error is not null)
            {
                // The cut's own journal entry (if it was written) finishes it before the mailbox is used again.
                return new RecoveryResult(new RecoveryNote(true, $"{name}: an incomplete record of {ours} bytes left by a crash at offset " +
                    $"{entry.Before} is followed by another program's mail, and could not be cut out yet ({error}); will retry before its next delivery"),
                    Unsettled: true);
            }
            journal.Forget(name);
            return new RecoveryResult(new RecoveryNote(false,
                $"{name}: removed an incomplete record of {ours} bytes left by a crash at offset {entry.Before}; the " +
                $"{now.Size - verified} bytes another program appended after it were kept"));
        }
        return Keep(journal, name, $"an interrupted append at offset {entry.Before} is followed by {now.Size - verified} bytes Bridge " +
            $"cannot prove it wrote ({ours} bytes verified as its own); everything was kept. A mail reader may show the " +
            $"incomplete record merged with the next message", critical: true);
    }

    /// <summary>The end of the longest run of pieces from entry.Before whose bytes match their hash.</summary>
    private static long VerifiedEnd(int reader, AppendJournalEntry entry, long size, out string? error)
    {
        error = null;
        var buffer = new byte[AppendDigest.PageBytes];
        var verified = entry.Before;
        var i = 0;
        foreach (var (start, end) in entry.Pieces)
        {
            if (end > size)
            {
                break;
            }
            var length = (int)(end - start);
            var n = Libc.ReadAt(reader, buffer.AsSpan(0, length), start);
            if (n < 0)
            {
                error = Libc.Describe(Libc.LastError);
                return verified;
            }
            if (n != length || AppendDigest.Hash(buffer.AsSpan(0, length), entry.Seed) != entry.HashOf(i))
            {
                break;
            }
            verified = end;
            i++;
        }
        return verified;
    }

    /// <summary>Where another writer's record starts at <paramref name="at"/> (MboxRecords.RecordStartAt: the mbox
    /// reader's rule); -1 when the bytes there are not a record start.</summary>
    private static long ForeignRecordAt(int reader, long at, long size)
    {
        Span<byte> head = stackalloc byte[MboxRecords.RecordStartWindow];
        var n = Libc.ReadAt(reader, head[..(int)Math.Min(head.Length, size - at)], at);
        if (n <= 0)
        {
            return -1;
        }
        var skip = MboxRecords.RecordStartAt(head[..n]);
        return skip < 0 ? -1 : at + skip;
    }

    private static RecoveryResult Keep(AppendJournal journal, string name, string why, bool critical)
    {
        var kept = journal.Keep(name, why, critical);
        var where = kept is null ? "the entry was removed (it could not be moved aside)" : $"the entry is kept in {kept}";
        return new RecoveryResult(new RecoveryNote(critical, $"{name}: {why}; {where}; `mailbridge check` reports it until it is removed"));
    }
}
