// Job: remember, durably, each mailbox append in progress: device and inode of the mailbox, its size before,
// its size after, the first record's first line ("From sender  date") and, for a group commit of several
// records, where each further record starts. Written and fsync'ed under the mailbox locks before the first
// byte is appended, removed after the append is fsync'ed or rolled back. An entry found later means Bridge
// died mid-append: MailboxAppender.Recover decides what to do with the tail.
// Failure: Record returns the errno (the delivery is then deferred: no append without its journal entry).
using System.Globalization;
using System.Text;
using Bridge.Native;

namespace Bridge.Delivery.Spool;

/// <param name="LaterStarts">Offsets where the 2nd, 3rd, ... record of a group commit start (empty for one record).</param>
public sealed record AppendJournalEntry(ulong Device, ulong Inode, long Before, long After, string FirstLine, IReadOnlyList<long> LaterStarts)
{
    public AppendJournalEntry(ulong device, ulong inode, long before, long after, string firstLine)
        : this(device, inode, before, after, firstLine, [])
    {
    }
}

public sealed class AppendJournal(string directory)
{
    public string Directory => directory;

    private string PathFor(string shortName) => System.IO.Path.Combine(directory, shortName + ".append");

    public int Record(string shortName, AppendJournalEntry entry)
    {
        var text = string.Create(CultureInfo.InvariantCulture,
            $"v1 {entry.Device} {entry.Inode} {entry.Before} {entry.After} {Convert.ToBase64String(Encoding.UTF8.GetBytes(entry.FirstLine))}{string.Concat(entry.LaterStarts.Select(s => $" {s}"))}\n");
        var fd = Libc.Open(PathFor(shortName), Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0x180);
        if (fd < 0)
        {
            return Libc.LastError;
        }
        var rc = Libc.WriteAll(fd, Encoding.ASCII.GetBytes(text));
        if (rc == 0 && Libc.Fsync(fd) != 0)
        {
            rc = Libc.LastError;
        }
        Libc.Close(fd);
        return rc != 0 ? rc : SyncDirectory();
    }

    /// <summary>Removing needs no fsync: an entry that survives a crash after a complete append is recognised as complete.</summary>
    public void Forget(string shortName) => Libc.Unlink(PathFor(shortName));

    public AppendJournalEntry? Find(string shortName)
    {
        var path = PathFor(shortName);
        if (!File.Exists(path)) // the common case: checked without the cost of an exception
        {
            return null;
        }
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (IOException)
        {
            return null;
        }
        var parts = text.Trim().Split(' ');
        var later = new List<long>();
        foreach (var part in parts.Skip(6))
        {
            if (!long.TryParse(part, CultureInfo.InvariantCulture, out var start))
            {
                return null;
            }
            later.Add(start);
        }
        if (parts.Length < 6 || parts[0] != "v1" ||
            !ulong.TryParse(parts[1], CultureInfo.InvariantCulture, out var device) ||
            !ulong.TryParse(parts[2], CultureInfo.InvariantCulture, out var inode) ||
            !long.TryParse(parts[3], CultureInfo.InvariantCulture, out var before) ||
            !long.TryParse(parts[4], CultureInfo.InvariantCulture, out var after))
        {
            return null;
        }
        return new AppendJournalEntry(device, inode, before, after, Encoding.UTF8.GetString(Convert.FromBase64String(parts[5])), later);
    }

    /// <summary>Short names with an entry left behind (by a crash).</summary>
    public IReadOnlyList<string> Pending() =>
        System.IO.Directory.Exists(directory)
            ? [.. System.IO.Directory.GetFiles(directory, "*.append").Select(f => System.IO.Path.GetFileNameWithoutExtension(f))]
            : [];

    private int SyncDirectory()
    {
        var fd = Libc.Open(directory, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        if (fd < 0)
        {
            return Libc.LastError;
        }
        var rc = Libc.Fsync(fd) == 0 ? 0 : Libc.LastError;
        Libc.Close(fd);
        return rc;
    }
}
