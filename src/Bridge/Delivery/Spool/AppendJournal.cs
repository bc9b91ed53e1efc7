// Job: remember, durably, each mailbox append in progress: device and inode of the mailbox, its size before, its
// size after, and a seeded 64-bit hash of every piece of the bytes to be written (4 KiB pages at absolute file
// offsets, also cut where a record of a batch ends, so every place a write can stop is a piece's end: see
// AppendDigest). Written and fsync'ed under the
// mailbox locks before the first byte is appended, removed after the append is fsync'ed or rolled back. An entry
// found later means Bridge died mid-append: AppendRecovery proves, page by page, which bytes are Bridge's own.
// An entry torn while it was written (empty, or short of the newline written last: Record was cut off, so its
// append never began) is removed by recovery; one that cannot be parsed otherwise (garbled by a disk error, written
// by an older version) is moved to <journal>/kept/ with a note saying why, so it never stops a delivery or the start;
// `mailbridge check` lists it.
// Failure: Record returns the errno and removes what it wrote (the delivery is then deferred: no append without its
// journal entry); Find never throws: an unreadable entry is a Problem value.
using System.Globalization;
using System.Text;
using Bridge.Native;

namespace Bridge.Delivery.Spool;

/// <param name="PageHashes">XxHash3 (seeded with <paramref name="Seed"/>) of each piece of [Before, After), 8 bytes each
/// (AppendDigest.Pieces: cut at page boundaries and at <see cref="Cuts"/>).</param>
public sealed record AppendJournalEntry(ulong Device, ulong Inode, long Before, long After, long Seed, byte[] PageHashes)
{
    /// <summary>Where records of the batch end inside a page (ascending, inside (Before, After)); empty for one record.</summary>
    public IReadOnlyList<long> Cuts { get; init; } = [];

    public int Pages => PageHashes.Length / 8;

    public ulong HashOf(int page) => BitConverter.ToUInt64(PageHashes, page * 8);

    public IEnumerable<(long Start, long End)> Pieces => AppendDigest.Pieces(Before, After, Cuts);
}

/// <summary>What Find read: an entry, nothing, or a problem that made the entry unusable.</summary>
/// <param name="Torn">The entry stops short of its final newline (or is empty): Record was cut off while writing it, so
/// the append it was for never began (no byte is appended before Record returns).</param>
/// <param name="Transient">The entry could not be read for a passing reason (out of descriptors or memory): it may be
/// whole, so it is read again later, not set aside.</param>
public readonly record struct JournalLookup(AppendJournalEntry? Entry, string? Problem, bool Torn = false, bool Transient = false)
{
    public static JournalLookup Nothing => default;

    public static JournalLookup Failed(string problem, int errno) =>
        new(null, problem, Transient: errno is Libc.EMFILE or Libc.ENFILE or Libc.ENOMEM or Libc.EINTR or Libc.EAGAIN);
}

/// <summary>An entry moved aside: the mailbox it is about, when, and why.</summary>
/// <param name="Critical">The mailbox may hold a partial record next to other mail (not just an unreadable entry).</param>
public sealed record KeptJournalEntry(string Mailbox, string File, string Why, bool Critical);

public sealed class AppendJournal(string directory)
{
    private const string KeptFolder = "kept";

    /// <summary>An entry is at most a few MB (8 bytes per 4 KiB of a batch); anything larger is garbage.</summary>
    private const long MaxEntryBytes = 64L << 20;

    public string Directory => directory;

    /// <summary>The account the package runs the daemon as (deploy/debian/postinst makes the journal its own).</summary>
    public const string ServiceAccount = "bridge";

    /// <summary>Makes the directory when it is missing (0700; given to the service account when root makes it, so the
    /// daemon can use what a verb made) and says what is wrong with it, or null. It must belong to root, to Bridge's
    /// euid or to the service account, be writable by nobody else, and be no link: recovery acts on what it finds here
    /// with Bridge's rights (it cuts bytes out of mailboxes), so an entry anybody else could have written would let
    /// them steer that. The daemon, the verbs and check use this one rule.</summary>
    public string? Prepare()
    {
        var service = Libc.GetPasswdEntry(ServiceAccount);
        const string key = "Bridge:Spool:JournalDirectory";
        if (Libc.Lstat(directory, out _) != 0 && Libc.LastError == Libc.ENOENT && MakeDirectory(service) is { } error)
        {
            return $"cannot create {key} '{directory}': {error}";
        }
        foreach (var path in new[] { directory, System.IO.Path.Combine(directory, KeptFolder) })
        {
            if (Libc.Lstat(path, out var stat) != 0)
            {
                if (Libc.LastError == Libc.ENOENT && path != directory)
                {
                    continue; // kept/ is made when first needed
                }
                return $"{key} '{path}' cannot be examined: {Libc.Describe(Libc.LastError)}";
            }
            if (!stat.IsDirectory)
            {
                return $"{key} '{path}' is {stat.KindName}, not a directory";
            }
            var owner = service?.Uid ?? Libc.Geteuid();
            if ((stat.Uid != 0 && stat.Uid != Libc.Geteuid() && stat.Uid != service?.Uid) || (stat.Permissions & 0x12) != 0)
            {
                return $"{key} '{path}' is owned by uid {stat.Uid} with mode {Convert.ToString(stat.Permissions, 8)}: only root or Bridge (uid {owner}) " +
                    $"may write it, or another user could forge what crash recovery acts on; fix: chown {owner} '{path}' && chmod 700 '{path}'";
            }
        }
        return null;
    }

    /// <summary>Makes the missing journal directory (and its parents), 0700, given to the service account when root makes it (so the
    /// daemon can use what a verb made): the one place it is made. Null, or why not.</summary>
    private string? MakeDirectory((uint Uid, uint Gid)? service)
    {
        try
        {
            System.IO.Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return ex.Message;
        }
        if (Libc.Geteuid() == 0 && service is { } account)
        {
            var fd = Libc.Open(directory, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
            if (fd >= 0)
            {
                _ = Libc.Fchown(fd, account.Uid, account.Gid);
                Libc.Close(fd);
            }
        }
        return null;
    }

    /// <summary>The reason beside a kept entry: a new file, never through a link.</summary>
    private static void WriteWhy(string path, string text)
    {
        var fd = Libc.Open(path, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0x180);
        if (fd >= 0)
        {
            _ = Libc.WriteAll(fd, Encoding.UTF8.GetBytes(text));
            Libc.Close(fd);
        }
    }

    private string PathFor(string shortName) => System.IO.Path.Combine(directory, shortName + ".append");

    public int Record(string shortName, AppendJournalEntry entry)
    {
        // v2: one record (pieces at page boundaries); v3: a batch whose records end inside pages, those ends listed.
        var text = entry.Cuts.Count == 0
            ? string.Create(CultureInfo.InvariantCulture,
                $"v2 {entry.Device} {entry.Inode} {entry.Before} {entry.After} {entry.Seed} {Convert.ToBase64String(entry.PageHashes)}\n")
            : string.Create(CultureInfo.InvariantCulture,
                $"v3 {entry.Device} {entry.Inode} {entry.Before} {entry.After} {entry.Seed} {string.Join(',', entry.Cuts)} {Convert.ToBase64String(entry.PageHashes)}\n");
        var fd = Libc.Open(PathFor(shortName), Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0x180);
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
        if (rc == 0)
        {
            rc = SyncDirectory(directory);
        }
        if (rc != 0)
        {
            Forget(shortName); // no append follows a failed Record: its (perhaps torn) entry must not outlive it
        }
        return rc;
    }

    /// <summary>Removing needs no fsync: an entry that survives a crash after a complete append is recognised as complete.</summary>
    public void Forget(string shortName) => Libc.Unlink(PathFor(shortName));

    public JournalLookup Find(string shortName)
    {
        var path = PathFor(shortName);
        if (Libc.Lstat(path, out var stat) != 0)
        {
            var statError = Libc.LastError;
            return statError == Libc.ENOENT ? JournalLookup.Nothing : JournalLookup.Failed($"cannot stat {path}: {Libc.Describe(statError)}", statError);
        }
        if (!stat.IsRegularFile)
        {
            return new JournalLookup(null, $"{path} is not a regular file");
        }
        if (stat.Size > MaxEntryBytes)
        {
            return new JournalLookup(null, $"{path} is {stat.Size} bytes, far more than an entry can be");
        }
        var fd = Libc.Open(path, Libc.O_RDONLY | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
        if (fd < 0)
        {
            var openError = Libc.LastError;
            return JournalLookup.Failed($"cannot open {path}: {Libc.Describe(openError)}", openError);
        }
        byte[] bytes;
        try
        {
            bytes = new byte[stat.Size];
            var got = 0;
            while (got < bytes.Length)
            {
                var n = Libc.ReadAt(fd, bytes.AsSpan(got), got);
                if (n < 0)
                {
                    var readError = Libc.LastError;
                    return JournalLookup.Failed($"cannot read {path}: {Libc.Describe(readError)}", readError);
                }
                if (n == 0)
                {
                    break;
                }
                got += n;
            }
            bytes = bytes[..got];
        }
        finally
        {
            Libc.Close(fd);
        }
        var entry = Parse(bytes, out var problem);
        return new JournalLookup(entry, entry is null ? $"{path}: {problem}" : null, entry is null && IsTorn(bytes));
    }

    /// <summary>Empty, or its last byte is not the newline Record writes last.</summary>
    internal static bool IsTorn(ReadOnlySpan<byte> bytes) => bytes.Length == 0 || bytes[^1] != (byte)'\n';

    /// <summary>The text of one entry as Record writes it; null and the reason for anything else (never throws).</summary>
    internal static AppendJournalEntry? Parse(ReadOnlySpan<byte> bytes, out string problem)
    {
        problem = "";
        if (IsTorn(bytes))
        {
            problem = bytes.Length == 0 ? "the entry is empty (torn while it was written)" : "the entry has no final newline (torn while it was written)";
            return null;
        }
        foreach (var b in bytes)
        {
            if (b is < 0x20 or > 0x7E && b != (byte)'\n')
            {
                problem = "the entry holds bytes that are not text (garbled)";
                return null;
            }
        }
        var parts = Encoding.ASCII.GetString(bytes).TrimEnd('\n').Split(' ');
        if (parts[0] is not ("v2" or "v3"))
        {
            problem = parts[0] == "v1"
                ? "the entry was written by an older Bridge (v1): it cannot prove which bytes are Bridge's, so nothing is removed"
                : "the entry does not start with a known version";
            return null;
        }
        long[] cuts = [];
        if (parts[0] == "v3")
        {
            if (parts.Length != 8 || !TryParseCuts(parts[6], out cuts))
            {
                problem = "the entry's fields are malformed";
                return null;
            }
            parts = [.. parts[..6], parts[7]];
        }
        if (parts.Length != 7 ||
            !ulong.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var device) ||
            !ulong.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var inode) ||
            !long.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var before) ||
            !long.TryParse(parts[4], NumberStyles.None, CultureInfo.InvariantCulture, out var after) ||
            !long.TryParse(parts[5], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var seed) ||
            after < before)
        {
            problem = "the entry's fields are malformed";
            return null;
        }
        if (cuts.Length > 0 && (cuts[0] <= before || cuts[^1] >= after || cuts.Any(c => c % AppendDigest.PageBytes == 0)))
        {
            problem = "the entry's record ends lie outside its byte range or on page boundaries";
            return null;
        }
        var hashes = new byte[parts[6].Length];
        if (!Convert.TryFromBase64String(parts[6], hashes, out var length) || length % 8 != 0 ||
            length / 8 != AppendDigest.PageCount(before, after) + cuts.Length)
        {
            problem = "the entry's page hashes are malformed or do not cover its byte range";
            return null;
        }
        return new AppendJournalEntry(device, inode, before, after, seed, hashes[..length]) { Cuts = cuts };
    }

    /// <summary>A comma-separated, strictly ascending list of offsets.</summary>
    private static bool TryParseCuts(string text, out long[] cuts)
    {
        var fields = text.Split(',');
        cuts = new long[fields.Length];
        for (var i = 0; i < fields.Length; i++)
        {
            if (!long.TryParse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture, out cuts[i]) || (i > 0 && cuts[i] <= cuts[i - 1]))
            {
                cuts = [];
                return false;
            }
        }
        return true;
    }

    /// <summary>A one-line entry of another kind than an append (MailboxCut's "cut", SpoolDrain's "collect"), replaced
    /// whole by a rename, so a crash leaves the old line or the new one, never a torn one. <paramref name="durable"/>:
    /// fsync'ed (survives power loss), else only a crash of Bridge. Returns 0 or the errno.</summary>
    public int WriteEntry(string shortName, string kind, string line, bool durable)
    {
        var path = System.IO.Path.Combine(directory, $"{shortName}.{kind}");
        var temporary = path + ".tmp";
        var flags = Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC;
        var fd = Libc.Open(temporary, flags, 0x180);
        if (fd < 0 && Libc.LastError == Libc.ENOENT && MakeDirectory(Libc.GetPasswdEntry(ServiceAccount)) is null)
        {
            fd = Libc.Open(temporary, flags, 0x180); // a verb run before the daemon ever made the journal directory
        }
        if (fd < 0)
        {
            return Libc.LastError;
        }
        var rc = Libc.WriteAll(fd, Encoding.ASCII.GetBytes(line + "\n"));
        if (rc == 0 && durable && Libc.Fsync(fd) != 0)
        {
            rc = Libc.LastError;
        }
        Libc.Close(fd);
        if (rc == 0 && Libc.Rename(temporary, path) != 0)
        {
            rc = Libc.LastError;
        }
        if (rc != 0)
        {
            Libc.Unlink(temporary);
            return rc;
        }
        return durable ? SyncDirectory(directory) : 0;
    }

    /// <summary>The line of an entry WriteEntry wrote (without its newline), null when there is none, or a problem.</summary>
    public string? ReadEntry(string shortName, string kind, out string? problem)
    {
        problem = null;
        var path = System.IO.Path.Combine(directory, $"{shortName}.{kind}");
        var read = UntrustedFile.Read(path, null, 64 * 1024, "a journal entry's size");
        if (read.Content is null)
        {
            if (Libc.Lstat(path, out _) != 0 && Libc.LastError == Libc.ENOENT)
            {
                return null;
            }
            problem = $"{path} {read.Problem}";
            return null;
        }
        var text = Encoding.ASCII.GetString(read.Content);
        if (!text.EndsWith('\n') || text.Any(c => c is < ' ' or > '~' && c != '\n'))
        {
            problem = $"{path} is not one line of text";
            return null;
        }
        return text.TrimEnd('\n');
    }

    /// <summary>Bytes saved durably beside an entry (MailboxCut's staged stretch). Returns 0 or the errno.</summary>
    public int WriteData(string shortName, string kind, ReadOnlySpan<byte> data)
    {
        var path = System.IO.Path.Combine(directory, $"{shortName}.{kind}");
        var fd = Libc.Open(path, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0x180);
        if (fd < 0)
        {
            return Libc.LastError;
        }
        var rc = Libc.WriteAll(fd, data);
        if (rc == 0 && Libc.Fsync(fd) != 0)
        {
            rc = Libc.LastError;
        }
        Libc.Close(fd);
        return rc != 0 ? rc : SyncDirectory(directory);
    }

    /// <summary>The bytes WriteData saved, when there are exactly <paramref name="length"/> of them; else null.</summary>
    public byte[]? ReadData(string shortName, string kind, long length)
    {
        var read = UntrustedFile.Read(System.IO.Path.Combine(directory, $"{shortName}.{kind}"), null, length, "the staged length");
        return read.Content is { } content && content.Length == length ? content : null;
    }

    public void ForgetEntry(string shortName, string kind) => Libc.Unlink(System.IO.Path.Combine(directory, $"{shortName}.{kind}"));

    /// <summary>Moves an entry of another kind aside to kept/ with the reason (as Keep does for appends).</summary>
    public string? KeepEntry(string shortName, string kind, string why)
    {
        var kept = System.IO.Path.Combine(directory, KeptFolder);
        var stamp = DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmssfff'Z'", CultureInfo.InvariantCulture);
        var target = System.IO.Path.Combine(kept, $"{shortName}.{stamp}.{kind}");
        try
        {
            System.IO.Directory.CreateDirectory(kept, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            if (Libc.Rename(System.IO.Path.Combine(directory, $"{shortName}.{kind}"), target) != 0)
            {
                ForgetEntry(shortName, kind);
                return null;
            }
            WriteWhy(target + ".why", "critical: " + why + "\n");
            SyncDirectory(kept);
            return target;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            ForgetEntry(shortName, kind);
            return null;
        }
    }

    /// <summary>Short names with an entry of <paramref name="kind"/> left behind.</summary>
    public IReadOnlyList<string> PendingOf(string kind)
    {
        try
        {
            return System.IO.Directory.Exists(directory)
                ? [.. System.IO.Directory.GetFiles(directory, "*." + kind).Select(f => System.IO.Path.GetFileNameWithoutExtension(f))]
                : [];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>Moves an entry that cannot be used to kept/ with the reason beside it. Returns where it went, or null
    /// when even that failed (the entry is then removed, so that it cannot block the mailbox for ever).</summary>
    public string? Keep(string shortName, string why, bool critical = false)
    {
        var kept = System.IO.Path.Combine(directory, KeptFolder);
        var stamp = DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmssfff'Z'", CultureInfo.InvariantCulture);
        var target = System.IO.Path.Combine(kept, $"{shortName}.{stamp}.append");
        try
        {
            System.IO.Directory.CreateDirectory(kept, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            if (Libc.Rename(PathFor(shortName), target) != 0)
            {
                Forget(shortName);
                return null;
            }
            WriteWhy(target + ".why", (critical ? "critical: " : "") + why + "\n");
            SyncDirectory(kept);
            return target;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Forget(shortName);
            return null;
        }
    }

    /// <summary>Entries moved aside by Keep (for `mailbridge check`).</summary>
    public IReadOnlyList<KeptJournalEntry> KeptEntries()
    {
        var kept = System.IO.Path.Combine(directory, KeptFolder);
        if (!System.IO.Directory.Exists(kept))
        {
            return [];
        }
        var list = new List<KeptJournalEntry>();
        foreach (var file in System.IO.Directory.GetFiles(kept).Where(f => !f.EndsWith(".why", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var name = System.IO.Path.GetFileName(file);
            var mailbox = name[..name.IndexOf('.', StringComparison.Ordinal)];
            string why;
            try
            {
                why = File.Exists(file + ".why") ? File.ReadAllText(file + ".why").Trim() : "no reason recorded";
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                why = $"the reason cannot be read: {ex.Message}";
            }
            var critical = why.StartsWith("critical: ", StringComparison.Ordinal);
            list.Add(new KeptJournalEntry(mailbox, file, critical ? why["critical: ".Length..] : why, critical));
        }
        return list;
    }

    /// <summary>Short names with an entry left behind (by a crash).</summary>
    public IReadOnlyList<string> Pending()
    {
        try
        {
            return System.IO.Directory.Exists(directory)
                ? [.. System.IO.Directory.GetFiles(directory, "*.append").Select(f => System.IO.Path.GetFileNameWithoutExtension(f))]
                : [];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static int SyncDirectory(string path)
    {
        var fd = Libc.Open(path, Libc.O_RDONLY | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
        if (fd < 0)
        {
            return Libc.LastError;
        }
        var rc = Libc.Fsync(fd) == 0 ? 0 : Libc.LastError;
        Libc.Close(fd);
        return rc;
    }
}
