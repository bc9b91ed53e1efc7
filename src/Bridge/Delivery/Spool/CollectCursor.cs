// Job: remember, in the journal ("<name>.collect"), how far moving a mailbox's mail into the store got: the mailbox's
// device and inode, where the last record the store accepted starts and ends, and a seeded hash of that record. It
// is written after every message the store accepts (so a failed round, or a kill, never sends again what the store
// already took), and the delivered prefix is removed once, in place (MailboxCut), when the collection ends: that
// keeps the cost of collecting a spool linear in its size and the mailbox's inode the same. A cursor is used only
// when the mailbox still holds exactly that record at exactly that place (another program may have rewritten the
// mailbox meanwhile); otherwise collection starts again from the first message (duplicates, never a loss).
// Failure: never throws; a cursor that cannot be written means that a crash may send those messages again.
using System.Globalization;
using System.IO.Hashing;
using Bridge.Native;

namespace Bridge.Delivery.Spool;

internal sealed record CollectCursor(ulong Device, ulong Inode, long RecordStart, long End, long Seed, ulong RecordHash)
{
    public const string Kind = "collect";

    private string Line => string.Create(CultureInfo.InvariantCulture, $"collect1 {Device} {Inode} {RecordStart} {End} {Seed} {RecordHash}");

    /// <summary>The cursor after the store accepted the record [<paramref name="start"/>, <paramref name="end"/>) of the
    /// mailbox open as <paramref name="fd"/>; null when the record cannot be read back.</summary>
    public static CollectCursor? After(int fd, long start, long end)
    {
        if (Libc.Fstat(fd, out var stat) != 0)
        {
            return null;
        }
        var seed = Random.Shared.NextInt64();
        return HashOf(fd, start, end, seed) is { } hash ? new CollectCursor(stat.Device, stat.Inode, start, end, seed, hash) : null;
    }

    /// <param name="durable">fsync'ed: survives power loss (at the end of a batch); else a kill of Bridge only.</param>
    public int Save(AppendJournal journal, string name, bool durable) => journal.WriteEntry(name, Kind, Line, durable);

    public static void Forget(AppendJournal journal, string name) => journal.ForgetEntry(name, Kind);

    /// <summary>The cursor of the mailbox open as <paramref name="fd"/> (its locks held), when it still fits the file;
    /// null otherwise, with <paramref name="note"/> saying why a cursor was dropped (null: there was none).</summary>
    public static CollectCursor? Find(AppendJournal journal, string name, int fd, out string? note)
    {
        note = null;
        var line = journal.ReadEntry(name, Kind, out var problem);
        if (line is null)
        {
            if (problem is not null)
            {
                Forget(journal, name);
                note = $"the collection cursor could not be read ({problem}); starting from the first message";
            }
            return null;
        }
        var cursor = Parse(line);
        if (cursor is null || Libc.Fstat(fd, out var stat) != 0)
        {
            Forget(journal, name);
            note = "the collection cursor is garbled; starting from the first message";
            return null;
        }
        if (stat.Device != cursor.Device || stat.Inode != cursor.Inode || cursor.End > stat.Size ||
            HashOf(fd, cursor.RecordStart, cursor.End, cursor.Seed) != cursor.RecordHash || !RecordStartsAt(fd, cursor.End, stat.Size))
        {
            Forget(journal, name);
            note = "the mailbox changed since the last collection stopped (another program rewrote it); starting from the first message";
            return null;
        }
        return cursor;
    }

    private static CollectCursor? Parse(string line)
    {
        var parts = line.Split(' ');
        return parts.Length == 7 && parts[0] == "collect1" &&
            ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var device) &&
            ulong.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var inode) &&
            long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var start) &&
            long.TryParse(parts[4], NumberStyles.None, CultureInfo.InvariantCulture, out var end) &&
            long.TryParse(parts[5], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var seed) &&
            ulong.TryParse(parts[6], NumberStyles.None, CultureInfo.InvariantCulture, out var hash) && start < end
            ? new CollectCursor(device, inode, start, end, seed, hash)
            : null;
    }

    private static bool RecordStartsAt(int fd, long at, long size)
    {
        if (at == size)
        {
            return true;
        }
        Span<byte> head = stackalloc byte[5];
        return Libc.ReadAt(fd, head, at) == 5 && MboxRecords.IsFromLine(head);
    }

    private static ulong? HashOf(int fd, long start, long end, long seed)
    {
        var hasher = new XxHash64(seed);
        return FileRangeHash.Append(hasher, fd, start, end, new byte[64 * 1024]) ? hasher.GetCurrentHashAsUInt64() : null;
    }
}
