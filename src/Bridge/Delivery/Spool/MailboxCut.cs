// Job: remove a byte range [Start, End) from a locked mailbox in place, crash-safely, without ever replacing the
// mailbox's inode (a program that opened the mailbox before, e.g. a writer that takes only the fcntl lock, goes on
// writing into the one file everybody reads). Used by collection (the delivered prefix, once at the end), probe (its
// record) and crash recovery (Bridge's partial record before another program's mail).
// How: a range at the end is one ftruncate. Otherwise the bytes after the range (the tail) are copied down over it
// through a second, non-appending descriptor, and the file is cut to its new length. Before the first byte moves, a
// journal entry ("<name>.cut": the range, the size, a seeded hash of the tail) is fsync'ed; every copied stretch is
// fsync'ed and recorded before the next one begins; a stretch longer than the range is first saved in the journal
// ("<name>.cutdata") and copied from there, so the part of the tail not yet copied is never lost: after a crash, Settle proves with the hash which bytes are where and finishes
// the copy. Bytes another program appended after a crash, before Settle ran, are moved down as well (a second cut
// of the leftover stretch). Every step is linear in the tail.
// Failure: Remove returns the error text (the mailbox is then unchanged, or its journal entry lets Settle finish the
// cut before the mailbox is used again); Settle never throws: what it cannot prove it keeps (the entry moves to
// kept/ with a critical note, as AppendRecovery does) and touches nothing.
using System.Globalization;
using System.IO.Hashing;
using Bridge.Native;

namespace Bridge.Delivery.Spool;

/// <param name="Done">Bytes of the tail already copied (and fsync'ed).</param>
/// <param name="Staged">Bytes of the tail from Done on that are saved in the journal ("&lt;name&gt;.cutdata") and are being
/// copied: a range shorter than a stretch would let the copy overwrite tail bytes not yet copied.</param>
/// <param name="JunkHash">Non-zero once the whole tail is copied: the hash of the first bytes after the moved tail
/// (what the cut to the new length removes), which tells after a crash whether that cut happened.</param>
internal sealed record CutEntry(ulong Device, ulong Inode, long Start, long End, long Size, long Seed, ulong TailHash, long Done, ulong JunkHash, long Staged = 0)
{
    public long Tail => Size - End;

    public long Length => End - Start;

    public string Line => string.Create(CultureInfo.InvariantCulture, $"cut1 {Device} {Inode} {Start} {End} {Size} {Seed} {TailHash} {Done} {JunkHash} {Staged}");

    public static CutEntry? Parse(string line)
    {
        var parts = line.Split(' ');
        if (parts.Length != 11 || parts[0] != "cut1")
        {
            return null;
        }
        var n = new long[6];
        if (!ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var device) ||
            !ulong.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var inode) ||
            !ulong.TryParse(parts[7], NumberStyles.None, CultureInfo.InvariantCulture, out var tailHash) ||
            !ulong.TryParse(parts[9], NumberStyles.None, CultureInfo.InvariantCulture, out var junkHash))
        {
            return null;
        }
        foreach (var (index, at) in new[] { (3, 0), (4, 1), (5, 2), (6, 3), (8, 4), (10, 5) })
        {
            if (!long.TryParse(parts[index], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out n[at]))
            {
                return null;
            }
        }
        var entry = new CutEntry(device, inode, n[0], n[1], n[2], n[3], tailHash, n[4], junkHash, n[5]);
        return entry.Start < 0 || entry.End <= entry.Start || entry.Size <= entry.End || entry.Done < 0 || entry.Done > entry.Tail ||
            entry.Staged < 0 || entry.Done + entry.Staged > entry.Tail ? null : entry;
    }
}

internal static class MailboxCut
{
    public const string Kind = "cut";

    /// <summary>Where a stretch of the tail waits while it is copied over a range shorter than the stretch.</summary>
    public const string DataKind = "cutdata";

    /// <summary>The most copied between two checkpoints (each costs a few fsyncs).</summary>
    private const int Stretch = 4 << 20;

    private const int Chunk = 1 << 20;
    private const int JunkProbe = 4096;

    /// <summary>Removes [<paramref name="start"/>, <paramref name="end"/>) from the mailbox whose locks the caller holds
    /// (<paramref name="lockedFd"/>: its descriptor). Returns null, or why not.</summary>
    /// <param name="stretch">The most copied between checkpoints (tests make it small).</param>
    /// <param name="step">Told each durable step's name before it is taken (tests throw there to play a crash).</param>
    /// <param name="committed">Called once the cut is sure to happen (its journal entry is durable, or just before the one
    /// truncation): what made the range removable (a collection cursor) may be forgotten then, never before.</param>
    public static string? Remove(int lockedFd, string path, string name, long start, long end, AppendJournal journal,
        int stretch = Stretch, Action<string>? step = null, Action? committed = null)
    {
        if (Libc.Fstat(lockedFd, out var now) != 0)
        {
            return $"fstat {path}: {Libc.Describe(Libc.LastError)}";
        }
        end = Math.Min(end, now.Size);
        if (start >= end)
        {
            return null;
        }
        if (end == now.Size)
        {
            // The cursor goes only once the truncation is durable; a crash in between leaves a cursor that no longer
            // fits the file, which CollectCursor.Find drops.
            if (Libc.Ftruncate(lockedFd, start) != 0 || Libc.Fsync(lockedFd) != 0)
            {
                return $"cannot truncate {path}: {Libc.Describe(Libc.LastError)}";
            }
            committed?.Invoke();
            return null;
        }
        var rw = OpenReadWrite(path, now, out var problem);
        if (rw < 0)
        {
            return problem;
        }
        try
        {
            var seed = Random.Shared.NextInt64();
            if (Hash(rw, seed, [(end, now.Size)], out var tailHash) is { } readError)
            {
                return readError;
            }
            var entry = new CutEntry(now.Device, now.Inode, start, end, now.Size, seed, tailHash, 0, 0);
            var rc = journal.WriteEntry(name, Kind, entry.Line, durable: true);
            if (rc != 0)
            {
                return $"cannot write the journal entry for removing bytes of {path}: {Libc.Describe(rc)}";
            }
            committed?.Invoke(); // from here on a crash is finished by Settle, never undone
            step?.Invoke("copy");
            return Finish(rw, path, name, entry, journal, stretch, step);
        }
        finally
        {
            Libc.Close(rw);
        }
    }

    /// <summary>Finishes a cut a crash interrupted, under the mailbox's locks, before anything else touches the mailbox.
    /// Returns what it did (null: there was nothing to do).</summary>
    public static RecoveryNote? Settle(int lockedFd, string path, string name, AppendJournal journal)
    {
        var line = journal.ReadEntry(name, Kind, out var unreadable);
        if (line is null)
        {
            return unreadable is null ? null : Keep(journal, name, $"unreadable journal entry of a cut in progress ({unreadable})");
        }
        if (CutEntry.Parse(line) is not { } entry)
        {
            return Keep(journal, name, "the journal entry of a cut in progress is garbled");
        }
        if (Libc.Fstat(lockedFd, out var now) != 0)
        {
            return new RecoveryNote(true, $"{name}: cannot stat the mailbox to finish a cut: {Libc.Describe(Libc.LastError)}; will retry before its next use");
        }
        if (now.Device != entry.Device || now.Inode != entry.Inode)
        {
            journal.ForgetEntry(name, Kind); // another file is the mailbox now: nothing of Bridge's half-done work is in it
            journal.ForgetEntry(name, DataKind);
            return null;
        }
        var rw = OpenReadWrite(path, now, out var problem);
        if (rw < 0)
        {
            return new RecoveryNote(true, $"{name}: cannot open the mailbox to finish a cut: {problem}; will retry before its next use");
        }
        try
        {
            string? error;
            if (entry.JunkHash != 0)
            {
                if (now.Size >= entry.Size && Hash(rw, entry.Seed, [(entry.Start + entry.Tail, entry.Start + entry.Tail + Math.Min(JunkProbe, entry.Length))], out var junk) is null &&
                    (junk | 1) == entry.JunkHash)
                {
                    error = Finish(rw, path, name, entry, journal); // copied, not yet cut to length
                }
                else if (now.Size >= entry.Start + entry.Tail && Hash(rw, entry.Seed, [(entry.Start, entry.Start + entry.Tail)], out var moved) is null &&
                    moved == entry.TailHash)
                {
                    journal.ForgetEntry(name, Kind); // cut already; what follows was appended later
                    journal.ForgetEntry(name, DataKind);
                    return null;
                }
                else
                {
                    return Keep(journal, name, "the mailbox is not as a cut that was finishing left it; everything was kept");
                }
            }
            else if (entry.Staged > 0)
            {
                var staged = journal.ReadData(name, DataKind, entry.Staged);
                if (staged is null || now.Size < entry.Size ||
                    HashWith(rw, entry.Seed, (entry.Start, entry.Start + entry.Done), staged, (entry.End + entry.Done + entry.Staged, entry.Size)) != entry.TailHash)
                {
                    return Keep(journal, name, $"the mailbox is not as a cut of bytes {entry.Start}-{entry.End} left it; everything was kept");
                }
                error = CopyStaged(rw, path, name, entry, staged, journal, out var next) ?? Finish(rw, path, name, next, journal);
            }
            else
            {
                if (now.Size < entry.Size || Hash(rw, entry.Seed, [(entry.Start, entry.Start + entry.Done), (entry.End + entry.Done, entry.Size)], out var tail) is not null ||
                    tail != entry.TailHash)
                {
                    return Keep(journal, name, $"the mailbox is not as a cut of bytes {entry.Start}-{entry.End} left it; everything was kept");
                }
                error = Finish(rw, path, name, entry, journal);
            }
            return error is null
                ? new RecoveryNote(false, $"{name}: finished removing bytes {entry.Start}-{entry.End}, which a crash had interrupted")
                : new RecoveryNote(true, $"{name}: could not finish removing bytes {entry.Start}-{entry.End} after a crash ({error}); will retry before its next use");
        }
        finally
        {
            Libc.Close(rw);
        }
    }

    /// <summary>Copies the rest of the tail down (from entry.Done), then cuts the file to its new length; bytes found after
    /// the old end (appended after a crash) are moved down by a cut of their own.</summary>
    private static string? Finish(int rw, string path, string name, CutEntry entry, AppendJournal journal, int stretch = Stretch, Action<string>? step = null)
    {
        var buffer = new byte[(int)Math.Min(stretch, Math.Max(entry.Tail, 1))];
        while (entry.Done < entry.Tail)
        {
            var n = (int)Math.Min(buffer.Length, entry.Tail - entry.Done);
            if (ReadFully(rw, buffer.AsSpan(0, n), entry.End + entry.Done, path) is { } readError)
            {
                return readError;
            }
            if (n <= entry.Length)
            {
                // The stretch lands wholly before the bytes it came from: the rest of the tail stays untouched.
                var rc = Libc.WriteAllAt(rw, buffer.AsSpan(0, n), entry.Start + entry.Done);
                if (rc != 0)
                {
                    return $"write {path}: {Libc.Describe(rc)}";
                }
                step?.Invoke("copied");
                entry = entry with { Done = entry.Done + n };
                if (Checkpoint(rw, journal, name, entry, path) is { } checkpointError)
                {
                    return checkpointError;
                }
                continue;
            }
            // Longer than the range: it would overwrite its own source; save it in the journal first.
            step?.Invoke("stage");
            var saved = journal.WriteData(name, DataKind, buffer.AsSpan(0, n));
            if (saved != 0)
            {
                return $"journal: {Libc.Describe(saved)}";
            }
            var staged = entry with { Staged = n };
            var stageError = journal.WriteEntry(name, Kind, staged.Line, durable: true);
            if (stageError != 0)
            {
                return $"journal: {Libc.Describe(stageError)}";
            }
            step?.Invoke("staged");
            if (CopyStaged(rw, path, name, staged, buffer.AsMemory(0, n), journal, out entry, step) is { } copyError)
            {
                return copyError;
            }
        }
        var newLength = entry.Start + entry.Tail;
        if (Hash(rw, entry.Seed, [(newLength, newLength + Math.Min(JunkProbe, entry.Length))], out var junk) is { } probeError)
        {
            return probeError;
        }
        if (Checkpoint(rw, journal, name, entry with { Done = entry.Tail, JunkHash = junk | 1 }, path) is { } doneError)
        {
            return doneError;
        }
        step?.Invoke("truncate");
        if (Libc.Fstat(rw, out var now) != 0)
        {
            return $"fstat {path}: {Libc.Describe(Libc.LastError)}";
        }
        if (now.Size > entry.Size)
        {
            // Another program appended after a crash: its bytes follow the old end; remove the stretch between.
            var seed = Random.Shared.NextInt64();
            if (Hash(rw, seed, [(entry.Size, now.Size)], out var foreignHash) is { } foreignError)
            {
                return foreignError;
            }
            var next = new CutEntry(now.Device, now.Inode, newLength, entry.Size, now.Size, seed, foreignHash, 0, 0);
            var rc = journal.WriteEntry(name, Kind, next.Line, durable: true);
            return rc != 0 ? $"journal: {Libc.Describe(rc)}" : Finish(rw, path, name, next, journal, stretch, step);
        }
        if (Libc.Ftruncate(rw, newLength) != 0 || Libc.Fsync(rw) != 0)
        {
            return $"cannot truncate {path} to {newLength} bytes: {Libc.Describe(Libc.LastError)}";
        }
        step?.Invoke("forget");
        journal.ForgetEntry(name, Kind);
        journal.ForgetEntry(name, DataKind);
        return null;
    }

    /// <summary>Writes the staged stretch in place and records it as copied.</summary>
    private static string? CopyStaged(int rw, string path, string name, CutEntry staged, ReadOnlyMemory<byte> data, AppendJournal journal, out CutEntry next,
        Action<string>? step = null)
    {
        next = staged with { Done = staged.Done + staged.Staged, Staged = 0 };
        var half = data.Length / 2;
        var rc = Libc.WriteAllAt(rw, data.Span[..half], staged.Start + staged.Done);
        step?.Invoke("half-written");
        if (rc == 0)
        {
            rc = Libc.WriteAllAt(rw, data.Span[half..], staged.Start + staged.Done + half);
        }
        if (rc != 0)
        {
            return $"write {path}: {Libc.Describe(rc)}";
        }
        var error = Checkpoint(rw, journal, name, next, path);
        if (error is null)
        {
            journal.ForgetEntry(name, DataKind);
        }
        return error;
    }

    private static string? ReadFully(int fd, Span<byte> buffer, long offset, string path)
    {
        var got = 0;
        while (got < buffer.Length)
        {
            var n = Libc.ReadAt(fd, buffer[got..], offset + got);
            if (n <= 0)
            {
                return n < 0 ? $"read {path}: {Libc.Describe(Libc.LastError)}" : $"{path} ended early";
            }
            got += n;
        }
        return null;
    }

    /// <summary>The seeded hash of a file range, bytes from memory, and another file range, one after the other.</summary>
    private static ulong? HashWith(int fd, long seed, (long Start, long End) before, ReadOnlyMemory<byte> middle, (long Start, long End) after)
    {
        var hasher = new XxHash64(seed);
        var buffer = new byte[Chunk];
        foreach (var (start, end, isMiddle) in new[] { (before.Start, before.End, false), (0L, 0L, true), (after.Start, after.End, false) })
        {
            if (isMiddle)
            {
                hasher.Append(middle.Span);
                continue;
            }
            if (!FileRangeHash.Append(hasher, fd, start, end, buffer))
            {
                return null;
            }
        }
        return hasher.GetCurrentHashAsUInt64();
    }

    private static string? Checkpoint(int rw, AppendJournal journal, string name, CutEntry entry, string path)
    {
        if (Libc.Fsync(rw) != 0)
        {
            return $"fsync {path}: {Libc.Describe(Libc.LastError)}";
        }
        var rc = journal.WriteEntry(name, Kind, entry.Line, durable: true);
        return rc == 0 ? null : $"journal: {Libc.Describe(rc)}";
    }

    /// <summary>A descriptor of the locked mailbox that can write at any offset (the locked one appends).</summary>
    private static int OpenReadWrite(string path, FileStat locked, out string? problem)
    {
        var fd = Libc.Open(path, Libc.O_RDWR | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_NOCTTY | Libc.O_CLOEXEC, 0);
        if (fd < 0)
        {
            problem = $"cannot open {path}: {Libc.Describe(Libc.LastError)}";
            return -1;
        }
        if (Libc.Fstat(fd, out var opened) != 0 || !opened.SameFileAs(locked))
        {
            Libc.Close(fd);
            problem = $"{path} no longer names the locked mailbox";
            return -1;
        }
        problem = null;
        return fd;
    }

    /// <summary>The seeded hash of the byte ranges read one after the other; null, or the read error.</summary>
    private static string? Hash(int fd, long seed, IReadOnlyList<(long Start, long End)> ranges, out ulong hash)
    {
        var hasher = new XxHash64(seed);
        var buffer = new byte[Chunk];
        hash = 0;
        foreach (var (start, end) in ranges)
        {
            for (var at = start; at < end;)
            {
                var n = Libc.ReadAt(fd, buffer.AsSpan(0, (int)Math.Min(buffer.Length, end - at)), at);
                if (n <= 0)
                {
                    return n < 0 ? $"read: {Libc.Describe(Libc.LastError)}" : "the file ended early";
                }
                hasher.Append(buffer.AsSpan(0, n));
                at += n;
            }
        }
        hash = hasher.GetCurrentHashAsUInt64();
        return null;
    }

    private static RecoveryNote Keep(AppendJournal journal, string name, string why)
    {
        var kept = journal.KeepEntry(name, Kind, why);
        if (journal.PendingOf(DataKind).Contains(name, StringComparer.Ordinal))
        {
            _ = journal.KeepEntry(name, DataKind, why); // the staged bytes go with it: they may be all that is left of them
        }
        return new RecoveryNote(true, $"{name}: {why}; {(kept is null ? "the entry was removed" : $"the entry is kept in {kept}")}; `mailbridge check` reports it until it is removed");
    }
}
