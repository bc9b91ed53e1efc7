// Job: hold one mailbox open and locked for one delivery, the way a trusted local delivery agent does:
// in-process lock, open with O_NOFOLLOW|O_APPEND (or create O_EXCL 0600 and fchown to the user), refuse
// symlinks, non-regular files, hard links and foreign owners, take the dotlock and a whole-file fcntl (OFD)
// write lock non-blocking with jittered retries, then record the real end of the file.
// Before the first delivery after a crash it settles the append that crash interrupted (AppendRecovery); if that
// rewrote the mailbox, the new file is opened and checked from the start.
// Append, Commit (fsync) and Rollback (ftruncate to the recorded size + fsync) all happen under the locks.
// Failure: every problem is a DeliveryStatus (450/451 4.2.0, 452 4.3.1, 552 5.2.2, 451 4.3.0); the file is
// never written before all checks passed, and a rollback restores its exact previous size.
using Bridge.Native;
using Bridge.Common;

namespace Bridge.Delivery.Spool;

internal sealed class MailboxAppender : IDisposable
{
    private readonly string _path;
    private readonly string _name;
    private readonly Dotlock _dotlock;
    private IDisposable? _processLock;
    private int _fd = -1;
    private bool _fileLocked;
    private bool _written;

    private readonly List<RecoveryNote> _notes;
    private long _position;

    private MailboxAppender(string path, string name, List<RecoveryNote> notes)
    {
        _path = path;
        _name = name;
        _notes = notes;
        _dotlock = new Dotlock(path);
    }

    public long OriginalSize { get; private set; }

    public FileStat Stat { get; private set; }

    public static async Task<(MailboxAppender? Appender, DeliveryStatus Status)> OpenAsync(
        string shortName, uint expectedUid, SpoolSettings settings, InProcessMailboxLocks locks, AppendJournal journal,
        CancellationToken cancellationToken)
    {
        var notes = new List<RecoveryNote>();
        for (var attempt = 0; ; attempt++)
        {
            var (appender, status, rewritten) = await OpenOnceAsync(shortName, expectedUid, settings, locks, journal, notes, cancellationToken)
                .ConfigureAwait(false);
            if (!rewritten || attempt == 2)
            {
                return (appender, status);
            }
            // Recovery replaced the mailbox with a rewritten file: lock and check the new one from the start.
        }
    }

    private static async Task<(MailboxAppender? Appender, DeliveryStatus Status, bool Rewritten)> OpenOnceAsync(
        string shortName, uint expectedUid, SpoolSettings settings, InProcessMailboxLocks locks, AppendJournal journal,
        List<RecoveryNote> notes, CancellationToken cancellationToken)
    {
        var path = System.IO.Path.Combine(settings.Directory, shortName);
        var appender = new MailboxAppender(path, shortName, notes);
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
            var recovery = AppendRecovery.Settle(appender._fd, path, shortName, journal);
            if (recovery.Note is { } note)
            {
                notes.Add(note);
            }
            if (recovery.Rewritten)
            {
                appender.Dispose();
                return (null, DeliveryStatus.Deferred($"mailbox {shortName} was rewritten by crash recovery, try again"), true);
            }
            status = appender.CheckAfterLock();
            return status.IsSuccess ? (appender, status, false) : Fail(status);
        }
        catch
        {
            appender.Dispose();
            throw;
        }

        (MailboxAppender?, DeliveryStatus, bool) Fail(DeliveryStatus failure)
        {
            appender.Dispose();
            return (null, failure, false);
        }
    }

    /// <summary>At start: settle an entry a crash left in the journal, under the mailbox's locks. Never throws.</summary>
    public static async Task<IReadOnlyList<RecoveryNote>> RecoverAsync(string shortName, SpoolSettings settings, InProcessMailboxLocks locks,
        AppendJournal journal, CancellationToken cancellationToken)
    {
        var (mailbox, status, notes) = await LockExistingAsync(shortName, settings, locks, journal, cancellationToken).ConfigureAwait(false);
        if (mailbox is not null)
        {
            mailbox.Dispose(); // LockExistingAsync settled the journal entry under the locks
            return notes;
        }
        if (Libc.Lstat(System.IO.Path.Combine(settings.Directory, shortName), out _) != 0 && Libc.LastError == Libc.ENOENT)
        {
            journal.Forget(shortName); // no such mailbox (any more): nothing of ours to clean up
            return notes;
        }
        return [.. notes, new RecoveryNote(true, $"{shortName}: could not lock the mailbox to check an append interrupted by a crash ({status}); will retry before its next delivery")];
    }

    /// <summary>For `drain` and recovery at start: an existing mailbox, locked exactly as for a delivery and with any
    /// interrupted append settled (null + status if not possible). The locks are released on every failure.</summary>
    public static async Task<(MailboxAppender? Appender, DeliveryStatus Status, IReadOnlyList<RecoveryNote> Notes)> LockExistingAsync(string shortName,
        SpoolSettings settings, InProcessMailboxLocks locks, AppendJournal journal, CancellationToken cancellationToken)
    {
        var path = System.IO.Path.Combine(settings.Directory, shortName);
        var notes = new List<RecoveryNote>();
        for (var attempt = 0; ; attempt++)
        {
            var appender = new MailboxAppender(path, shortName, notes);
            var keep = false;
            try
            {
                appender._processLock = await locks.TryEnterAsync(path, settings.LockTimeout, cancellationToken).ConfigureAwait(false);
                if (appender._processLock is null)
                {
                    return (null, DeliveryStatus.LockBusy(shortName), notes);
                }
                appender._fd = Libc.Open(path, Libc.O_WRONLY | Libc.O_APPEND | Libc.O_NONBLOCK | Libc.O_NOFOLLOW | Libc.O_NOCTTY | Libc.O_CLOEXEC, 0);
                if (appender._fd < 0)
                {
                    return (null, DeliveryStatus.MailboxUnusable(shortName, Errno.Describe(Libc.LastError)), notes);
                }
                if (Libc.Fstat(appender._fd, out var opened) != 0 || !opened.IsRegularFile)
                {
                    return (null, DeliveryStatus.MailboxUnusable(shortName, "it is not a regular file"), notes);
                }
                var locked = await appender.LockAsync(settings, DateTime.UtcNow + settings.LockTimeout, cancellationToken).ConfigureAwait(false);
                if (!locked.IsSuccess)
                {
                    return (null, locked, notes);
                }
                var recovery = AppendRecovery.Settle(appender._fd, path, shortName, journal);
                if (recovery.Note is { } note)
                {
                    notes.Add(note);
                }
                if (recovery.Rewritten && attempt < 2)
                {
                    continue; // the mailbox is a new file now: lock that one
                }
                var checkedStatus = appender.CheckAfterLock();
                if (!checkedStatus.IsSuccess)
                {
                    return (null, checkedStatus, notes);
                }
                keep = true;
                return (appender, checkedStatus, notes);
            }
            finally
            {
                if (!keep)
                {
                    appender.Dispose();
                }
            }
        }
    }

    public string Path => _path;

    /// <summary>What recovery and lock-taking had to say (the agent logs it).</summary>
    public IReadOnlyList<RecoveryNote> Notes => _notes;

    /// <summary>For `drain`, with the locks held: the mailbox becomes its bytes from <paramref name="offset"/> on
    /// (MailboxRewrite: a new file renamed over it). Returns null or the error.</summary>
    public string? KeepFrom(long offset)
    {
        if (offset >= Stat.Size)
        {
            return Libc.Ftruncate(_fd, 0) == 0 && Libc.Fsync(_fd) == 0 ? null : Errno.Describe(Libc.LastError);
        }
        var reader = Libc.Open(_path, Libc.O_RDONLY | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
        if (reader < 0)
        {
            return Errno.Describe(Libc.LastError);
        }
        try
        {
            return MailboxRewrite.Keep(reader, _path, Stat, [(offset, Stat.Size)]);
        }
        finally
        {
            Libc.Close(reader);
        }
    }

    /// <summary>For `probe`, with the locks held: removes the bytes [start, end) (one record): a truncation when it is
    /// the last record, else a rewrite (MailboxRewrite). Returns null or the error.</summary>
    public string? RemoveRange(long start, long end)
    {
        if (end >= Stat.Size)
        {
            return Libc.Ftruncate(_fd, start) == 0 && Libc.Fsync(_fd) == 0 ? null : Errno.Describe(Libc.LastError);
        }
        var reader = Libc.Open(_path, Libc.O_RDONLY | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
        if (reader < 0)
        {
            return Errno.Describe(Libc.LastError);
        }
        try
        {
            return MailboxRewrite.Keep(reader, _path, Stat, [(0, start), (end, Stat.Size)]);
        }
        finally
        {
            Libc.Close(reader);
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
            if (_dotlock.Note is { } lockNote)
            {
                _notes.Add(new RecoveryNote(false, lockNote));
            }
            if (dot == DotlockResult.Failed)
            {
                return errno switch
                {
                    Libc.ENOSPC or Libc.EDQUOT => DeliveryStatus.NoSpace(),
                    Libc.EACCES or Libc.EPERM or Libc.EROFS => DeliveryStatus.LocalError(
                        $"cannot create dotlock {_dotlock.Path}: {Errno.Describe(errno)}; the spool directory must let Bridge create files (1777, or 2775 group mail)"),
                    _ => DeliveryStatus.LocalError($"cannot create dotlock {_dotlock.Path}: {Errno.Describe(errno)}"),
                };
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
        _position = locked.Size;
        Stat = locked;
        return new DeliveryStatus(250, "2.0.0", "ready");
    }

    public DeliveryStatus Append(MboxRecord record)
    {
        _written = true;
        var sink = new FileSink(_fd, _position);
        var rc = record.WriteTo(sink);
        if (rc == 0)
        {
            rc = sink.Flush();
        }
        _position = sink.Position;
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
    public string? TruncateTo(long size)
    {
        if (Libc.Ftruncate(_fd, size) != 0)
        {
            return $"cannot truncate {_path} back to {size} bytes: {Errno.Describe(Libc.LastError)}";
        }
        _position = size;
        return null;
    }

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
        _position = OriginalSize;
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

    /// <summary>Buffers record bytes into writes that end at absolute multiples of 64 KiB (or at the record's end), so
    /// a crash between two writes leaves the file ending on a page boundary of the journal's AppendDigest.</summary>
    private sealed class FileSink(int fd, long position) : IRecordSink
    {
        private const int Chunk = 64 * 1024;
        private readonly byte[] _buffer = new byte[Chunk];
        private int _used;
        private int _limit = (int)(Chunk - (position % Chunk));

        public long Position { get; private set; } = position;

        public int Write(ReadOnlySpan<byte> bytes)
        {
            while (bytes.Length > 0)
            {
                if (_used == _limit)
                {
                    var rc = Flush();
                    if (rc != 0)
                    {
                        return rc;
                    }
                }
                var n = Math.Min(bytes.Length, _limit - _used);
                bytes[..n].CopyTo(_buffer.AsSpan(_used));
                _used += n;
                bytes = bytes[n..];
            }
            return 0;
        }

        public int Flush()
        {
            var rc = Libc.WriteAll(fd, _buffer.AsSpan(0, _used));
            if (rc == 0)
            {
                Position += _used;
            }
            _used = 0;
            _limit = (int)(Chunk - (Position % Chunk));
            return rc;
        }
    }
}
