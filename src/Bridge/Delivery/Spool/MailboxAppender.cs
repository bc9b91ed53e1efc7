// Job: hold one mailbox open and locked for one delivery, the way a trusted local delivery agent does:
// in-process lock, open with O_NOFOLLOW|O_APPEND (or create O_EXCL 0600 and fchown to the user), refuse
// symlinks, non-regular files, hard links and foreign owners, take the dotlock and a whole-file fcntl (OFD)
// write lock non-blocking with jittered retries, then record the real end of the file.
// Before the first delivery after a crash it settles the append that crash interrupted (AppendJournal).
// Append, Commit (fsync) and Rollback (ftruncate to the recorded size + fsync) all happen under the locks.
// Failure: every problem is a DeliveryStatus (450/451 4.2.0, 452 4.3.1, 552 5.2.2, 451 4.3.0); the file is
// never written before all checks passed, and a rollback restores its exact previous size.
using Bridge.Native;

namespace Bridge.Delivery.Spool;

public sealed record RecoveryNote(bool Critical, string Message);

internal sealed class MailboxAppender : IDisposable
{
    private readonly string _path;
    private readonly string _name;
    private readonly Dotlock _dotlock;
    private IDisposable? _processLock;
    private int _fd = -1;
    private bool _fileLocked;
    private bool _written;

    private MailboxAppender(string path, string name)
    {
        _path = path;
        _name = name;
        _dotlock = new Dotlock(path);
    }

    public long OriginalSize { get; private set; }

    public FileStat Stat { get; private set; }

    /// <summary>What recovery did before this delivery (null: nothing to recover).</summary>
    public RecoveryNote? Recovery { get; private set; }

    public static async Task<(MailboxAppender? Appender, DeliveryStatus Status)> OpenAsync(
        string shortName, uint expectedUid, SpoolSettings settings, InProcessMailboxLocks locks, AppendJournal journal,
        CancellationToken cancellationToken)
    {
        var path = System.IO.Path.Combine(settings.Directory, shortName);
        var appender = new MailboxAppender(path, shortName);
        var deadline = DateTime.UtcNow + settings.LockTimeout;
        try
        {
            appender._processLock = await locks.TryEnterAsync(path, settings.LockTimeout, cancellationToken).ConfigureAwait(false);
            if (appender._processLock is null)
            {
                return Fail(cancellationToken.IsCancellationRequested ? ShuttingDown() : DeliveryStatus.LockBusy(shortName));
            }
            var status = appender.OpenChecked(expectedUid, settings);
            if (!status.IsSuccess)
            {
                return Fail(status);
            }
            status = await appender.LockAsync(settings, deadline, cancellationToken).ConfigureAwait(false);
            if (!status.IsSuccess)
            {
                return Fail(status);
            }
            appender.Recovery = appender.Recover(journal);
            status = appender.CheckAfterLock();
            return status.IsSuccess ? (appender, status) : Fail(status);
        }
        catch
        {
            appender.Dispose();
            throw;
        }

        (MailboxAppender?, DeliveryStatus) Fail(DeliveryStatus failure)
        {
            appender.Dispose();
            return (null, failure);
        }
    }

    /// <summary>At start: settle an entry a crash left in the journal, under the mailbox's locks.</summary>
    public static async Task<RecoveryNote?> RecoverAsync(string shortName, SpoolSettings settings, InProcessMailboxLocks locks,
        AppendJournal journal, CancellationToken cancellationToken)
    {
        var (mailbox, status) = await LockExistingAsync(shortName, settings, locks, journal, cancellationToken).ConfigureAwait(false);
        if (mailbox is not null)
        {
            using (mailbox)
            {
                return mailbox.Recovery; // LockExistingAsync settled the journal entry under the locks
            }
        }
        if (Libc.Lstat(System.IO.Path.Combine(settings.Directory, shortName), out _) != 0 && Libc.LastError == Libc.ENOENT)
        {
            journal.Forget(shortName); // no such mailbox (any more): nothing of ours to clean up
            return null;
        }
        return new RecoveryNote(true, $"{shortName}: could not lock the mailbox to check an append interrupted by a crash ({status}); will retry before its next delivery");
    }

    /// <summary>Settles the journal entry of an append that a crash interrupted (caller holds the locks):
    /// a complete record stays; a partial record of ours at the end is truncated away; a partial record with
    /// another writer's mail after it is left in place (truncating would destroy that mail) and reported.</summary>
    private RecoveryNote? Recover(AppendJournal journal)
    {
        var entry = journal.Find(_name);
        if (entry is null)
        {
            return null;
        }
        if (Libc.Fstat(_fd, out var now) != 0 || now.Device != entry.Device || now.Inode != entry.Inode || now.Size <= entry.Before)
        {
            journal.Forget(_name);
            return null;
        }
        var reader = Libc.Open(_path, Libc.O_RDONLY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0); // OFD locks survive closing it
        if (reader < 0)
        {
            return new RecoveryNote(true, $"{_name}: cannot read the mailbox to check an interrupted append: {Errno.Describe(Libc.LastError)}");
        }
        try
        {
            var firstLine = System.Text.Encoding.UTF8.GetBytes(entry.FirstLine + "\n");
            var head = new byte[firstLine.Length];
            var got = Libc.ReadAt(reader, head, entry.Before);
            if (got <= 0 || !firstLine.AsSpan(0, got).SequenceEqual(head.AsSpan(0, got)))
            {
                journal.Forget(_name);
                return new RecoveryNote(false, $"{_name}: the bytes after {entry.Before} are not the interrupted append; left alone");
            }
            var foreign = FindForeignRecordStart(reader, entry.Before + firstLine.Length, now.Size, entry.LaterStarts);
            var complete = now.Size >= entry.After && (foreign < 0 || foreign >= entry.After - 1) && EndsRecordAt(reader, entry.After);
            if (complete)
            {
                journal.Forget(_name);
                return null;
            }
            if (foreign >= 0)
            {
                journal.Forget(_name);
                return new RecoveryNote(true, $"{_name}: an incomplete record left by a crash at offset {entry.Before} is followed by other mail; left in place");
            }
            if (Libc.Ftruncate(_fd, entry.Before) != 0 || Libc.Fsync(_fd) != 0)
            {
                return new RecoveryNote(true, $"{_name}: cannot truncate an incomplete record left by a crash: {Errno.Describe(Libc.LastError)}");
            }
            journal.Forget(_name);
            return new RecoveryNote(false, $"{_name}: removed an incomplete record of {now.Size - entry.Before} bytes left by a crash (mailbox back to {entry.Before} bytes)");
        }
        finally
        {
            Libc.Close(reader);
        }
    }

    /// <summary>Like FindRecordStart, but the starts of the later records of our own group commit are not foreign.</summary>
    private static long FindForeignRecordStart(int fd, long from, long end, IReadOnlyList<long> ownStarts)
    {
        while (true)
        {
            var at = FindRecordStart(fd, from, end);
            if (at < 0 || !ownStarts.Contains(at + 1))
            {
                return at;
            }
            from = at + 1;
        }
    }

    /// <summary>Offset of the first "\nFrom " at or after <paramref name="from"/>, or -1. Bridge's own records
    /// never contain one after their first line (mboxo quoting), so one there starts another writer's record.</summary>
    private static long FindRecordStart(int fd, long from, long end)
    {
        var marker = "\nFrom "u8;
        var buffer = new byte[64 * 1024];
        for (var offset = from; offset < end; offset += buffer.Length - marker.Length)
        {
            var n = Libc.ReadAt(fd, buffer, offset);
            if (n <= 0)
            {
                return -1;
            }
            var at = buffer.AsSpan(0, n).IndexOf(marker);
            if (at >= 0)
            {
                return offset + at;
            }
            if (n < buffer.Length)
            {
                return -1;
            }
        }
        return -1;
    }

    private static bool EndsRecordAt(int fd, long after)
    {
        Span<byte> tail = stackalloc byte[2];
        return Libc.ReadAt(fd, tail, after - 2) == 2 && tail.SequenceEqual("\n\n"u8);
    }

    /// <summary>For `drain`: an existing mailbox, locked exactly as for a delivery (null + status if not possible).</summary>
    public static async Task<(MailboxAppender? Appender, DeliveryStatus Status)> LockExistingAsync(string shortName,
        SpoolSettings settings, InProcessMailboxLocks locks, AppendJournal journal, CancellationToken cancellationToken)
    {
        var path = System.IO.Path.Combine(settings.Directory, shortName);
        var appender = new MailboxAppender(path, shortName);
        appender._processLock = await locks.TryEnterAsync(path, settings.LockTimeout, cancellationToken).ConfigureAwait(false);
        appender._fd = Libc.Open(path, Libc.O_WRONLY | Libc.O_APPEND | Libc.O_NONBLOCK | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
        if (appender._processLock is null || appender._fd < 0)
        {
            var status = appender._fd < 0 ? DeliveryStatus.MailboxUnusable(shortName, Errno.Describe(Libc.LastError)) : DeliveryStatus.LockBusy(shortName);
            appender.Dispose();
            return (null, status);
        }
        var locked = await appender.LockAsync(settings, DateTime.UtcNow + settings.LockTimeout, cancellationToken).ConfigureAwait(false);
        appender.Recovery = locked.IsSuccess ? appender.Recover(journal) : null;
        var checkedStatus = locked.IsSuccess ? appender.CheckAfterLock() : locked;
        if (!checkedStatus.IsSuccess || !appender.Stat.IsRegularFile)
        {
            appender.Dispose();
            return (null, checkedStatus.IsSuccess ? DeliveryStatus.MailboxUnusable(shortName, "it is not a regular file") : checkedStatus);
        }
        return (appender, checkedStatus);
    }

    public string Path => _path;

    /// <summary>For `drain`, with the locks held: the mailbox becomes its bytes from <paramref name="offset"/> on.
    /// The rest is written to a new file (same owner, group, mode), fsync'ed and renamed over the mailbox, so a
    /// crash leaves either the old or the new mailbox, never a mix. Writers that take the dotlock before
    /// opening (Postfix, procmail) and Bridge (which re-checks the link count after locking) never write to the
    /// replaced file. Returns null or the error.</summary>
    public string? KeepFrom(long offset)
    {
        if (offset >= Stat.Size)
        {
            return Libc.Ftruncate(_fd, 0) == 0 && Libc.Fsync(_fd) == 0 ? null : Errno.Describe(Libc.LastError);
        }
        var temporary = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(_path)!, $".{_name}.drain-{Environment.ProcessId}");
        var reader = Libc.Open(_path, Libc.O_RDONLY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
        var writer = Libc.Open(temporary, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0x180);
        try
        {
            if (reader < 0 || writer < 0)
            {
                return Errno.Describe(Libc.LastError);
            }
            var buffer = new byte[64 * 1024];
            for (var at = offset; at < Stat.Size;)
            {
                var n = Libc.ReadAt(reader, buffer, at);
                if (n <= 0)
                {
                    return n < 0 ? Errno.Describe(Libc.LastError) : "the mailbox ended early";
                }
                var rc = Libc.WriteAll(writer, buffer.AsSpan(0, n));
                if (rc != 0)
                {
                    return Errno.Describe(rc);
                }
                at += n;
            }
            if (Libc.Fchown(writer, Stat.Uid, Stat.Gid) != 0 || Libc.Fchmod(writer, Stat.Permissions) != 0 || Libc.Fsync(writer) != 0 ||
                Libc.Rename(temporary, _path) != 0)
            {
                return Errno.Describe(Libc.LastError);
            }
            var directory = Libc.Open(System.IO.Path.GetDirectoryName(_path)!, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
            if (directory >= 0)
            {
                Libc.Fsync(directory);
                Libc.Close(directory);
            }
            return null;
        }
        finally
        {
            if (reader >= 0)
            {
                Libc.Close(reader);
            }
            if (writer >= 0)
            {
                Libc.Close(writer);
            }
            Libc.Unlink(temporary); // gone already after a successful rename
        }
    }

    public static DeliveryStatus ShuttingDown() => new(421, "4.3.2", "System shutting down, try again later");

    private DeliveryStatus OpenChecked(uint expectedUid, SpoolSettings settings)
    {
        const int openFlags = Libc.O_WRONLY | Libc.O_APPEND | Libc.O_NONBLOCK | Libc.O_NOCTTY | Libc.O_CLOEXEC;
        for (var attempt = 0; attempt < 3 && _fd < 0; attempt++)
        {
            _fd = Libc.Open(_path, openFlags | Libc.O_NOFOLLOW, 0);
            if (_fd >= 0)
            {
                break;
            }
            var errno = Libc.LastError;
            if (errno == Libc.ELOOP)
            {
                return DeliveryStatus.MailboxUnusable(_name, "it is a symbolic link");
            }
            if (errno != Libc.ENOENT)
            {
                return OpenError(errno);
            }
            _fd = Libc.Open(_path, openFlags | Libc.O_NOFOLLOW | Libc.O_CREAT | Libc.O_EXCL, 0x180 /* 0600 */);
            if (_fd >= 0)
            {
                var gid = settings.MailGroupId ?? Libc.Getegid();
                if (Libc.Fchown(_fd, expectedUid, gid) != 0)
                {
                    var chownError = Libc.LastError;
                    Libc.Unlink(_path);
                    return DeliveryStatus.LocalError(
                        $"cannot give new mailbox {_name} to uid {expectedUid} gid {gid}: {Errno.Describe(chownError)}");
                }
                break;
            }
            errno = Libc.LastError;
            if (errno != Libc.EEXIST)
            {
                return OpenError(errno);
            }
        }
        if (_fd < 0)
        {
            return DeliveryStatus.LocalError($"cannot open mailbox {_name}: it keeps appearing and disappearing");
        }

        if (Libc.Fstat(_fd, out var opened) != 0)
        {
            return DeliveryStatus.LocalError($"fstat {_name}: {Errno.Describe(Libc.LastError)}");
        }
        if (!opened.IsRegularFile)
        {
            return DeliveryStatus.MailboxUnusable(_name, "it is not a regular file");
        }
        if (opened.Links != 1)
        {
            return DeliveryStatus.MailboxUnusable(_name, $"it has {opened.Links} hard links");
        }
        if (opened.Uid != expectedUid)
        {
            return DeliveryStatus.MailboxUnusable(_name, $"it is owned by uid {opened.Uid}, not by its user (uid {expectedUid})");
        }
        if (Libc.Lstat(_path, out var named) != 0 || !named.SameFileAs(opened))
        {
            return DeliveryStatus.MailboxUnusable(_name, "it was replaced while being opened");
        }
        return new DeliveryStatus(250, "2.0.0", "open");
    }

    private DeliveryStatus OpenError(int errno) => errno switch
    {
        Libc.ENOSPC => DeliveryStatus.NoSpace(),
        Libc.EACCES or Libc.EPERM => DeliveryStatus.LocalError(
            $"cannot open mailbox {_name} in the spool directory: {Errno.Describe(errno)}; check its permissions (1777, or 2775 group mail)"),
        _ => DeliveryStatus.MailboxUnusable(_name, Errno.Describe(errno)),
    };

    private async Task<DeliveryStatus> LockAsync(SpoolSettings settings, DateTime deadline, CancellationToken cancellationToken)
    {
        while (true)
        {
            var dot = _dotlock.TryAcquire(settings.DotlockStaleAfter, out var errno);
            if (dot == DotlockResult.Failed)
            {
                return DeliveryStatus.LocalError(
                    $"cannot create dotlock {_dotlock.Path}: {Errno.Describe(errno)}; the spool directory must let Bridge create files (1777, or 2775 group mail)");
            }
            if (dot == DotlockResult.Acquired)
            {
                var lockError = Libc.TryLockWholeFile(_fd);
                if (lockError == 0)
                {
                    _fileLocked = true;
                    return new DeliveryStatus(250, "2.0.0", "locked");
                }
                _dotlock.Release();
                if (lockError is not (Libc.EAGAIN or Libc.EACCES))
                {
                    return DeliveryStatus.LocalError($"fcntl lock {_name}: {Errno.Describe(lockError)}");
                }
            }
            var pause = TimeSpan.FromMilliseconds(Random.Shared.Next(50, 250));
            if (DateTime.UtcNow + pause > deadline)
            {
                return DeliveryStatus.LockBusy(_name);
            }
            try
            {
                await Task.Delay(pause, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return ShuttingDown();
            }
        }
    }

    private DeliveryStatus CheckAfterLock()
    {
        if (Libc.Fstat(_fd, out var locked) != 0)
        {
            return DeliveryStatus.LocalError($"fstat {_name}: {Errno.Describe(Libc.LastError)}");
        }
        if (locked.Links != 1)
        {
            return DeliveryStatus.MailboxUnusable(_name, $"it has {locked.Links} hard links");
        }
        OriginalSize = locked.Size; // the real end: O_APPEND writes land here while we hold the locks
        Stat = locked;
        return new DeliveryStatus(250, "2.0.0", "ready");
    }

    public DeliveryStatus Append(MboxRecord record)
    {
        _written = true;
        var sink = new FileSink(_fd);
        var rc = record.WriteTo(sink);
        if (rc == 0)
        {
            rc = sink.Flush();
        }
        return rc == 0 ? new DeliveryStatus(250, "2.0.0", "appended") : Errno.ToStatus(rc, _name, "write to");
    }

    public DeliveryStatus Commit()
    {
        return Libc.Fsync(_fd) == 0
            ? new DeliveryStatus(250, "2.0.0", "durable")
            : Errno.ToStatus(Libc.LastError, _name, "fsync");
    }

    /// <summary>Cuts the file back to <paramref name="size"/> (the start of a record that failed; the caller
    /// fsyncs with Commit). Returns null or the error.</summary>
    public string? TruncateTo(long size) =>
        Libc.Ftruncate(_fd, size) == 0 ? null : $"cannot truncate {_path} back to {size} bytes: {Errno.Describe(Libc.LastError)}";

    /// <summary>Restores the size recorded under the lock. Returns an error text when that failed (the journal
    /// entry must then stay, for recovery to finish the job).</summary>
    public string? Rollback()
    {
        if (!_written)
        {
            return null;
        }
        if (Libc.Ftruncate(_fd, OriginalSize) != 0 || Libc.Fsync(_fd) != 0)
        {
            return $"cannot truncate {_path} back to {OriginalSize} bytes: {Errno.Describe(Libc.LastError)}";
        }
        _written = false;
        return null;
    }

    public void Dispose()
    {
        if (_fileLocked)
        {
            Libc.UnlockWholeFile(_fd);
            _fileLocked = false;
        }
        _dotlock.Release();
        if (_fd >= 0)
        {
            Libc.Close(_fd);
            _fd = -1;
        }
        _processLock?.Dispose();
        _processLock = null;
    }

    /// <summary>Buffers record bytes into 64 KiB writes.</summary>
    private sealed class FileSink(int fd) : IRecordSink
    {
        private readonly byte[] _buffer = new byte[64 * 1024];
        private int _used;

        public int Write(ReadOnlySpan<byte> bytes)
        {
            while (bytes.Length > 0)
            {
                if (_used == _buffer.Length)
                {
                    var rc = Flush();
                    if (rc != 0)
                    {
                        return rc;
                    }
                }
                var n = Math.Min(bytes.Length, _buffer.Length - _used);
                bytes[..n].CopyTo(_buffer.AsSpan(_used));
                _used += n;
                bytes = bytes[n..];
            }
            return 0;
        }

        public int Flush()
        {
            var rc = Libc.WriteAll(fd, _buffer.AsSpan(0, _used));
            _used = 0;
            return rc;
        }
    }
}
