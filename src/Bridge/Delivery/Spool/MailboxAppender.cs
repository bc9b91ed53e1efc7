// Job: hold one mailbox open and locked for one delivery, the way a trusted local delivery agent does:
// in-process lock, open with O_NOFOLLOW|O_APPEND (or create O_EXCL 0600 and fchown to the user), refuse
// symlinks, non-regular files, hard links and foreign owners, take the dotlock and a whole-file fcntl (OFD)
// write lock non-blocking with jittered retries, then record the real end of the file.
// Append, Commit (fsync) and Rollback (ftruncate to the recorded size + fsync) all happen under the locks.
// Failure: every problem is a DeliveryStatus (450/451 4.2.0, 452 4.3.1, 552 5.2.2, 451 4.3.0); the file is
// never written before all checks passed, and a rollback restores its exact previous size.
using Bridge.Native;

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

    private MailboxAppender(string path, string name)
    {
        _path = path;
        _name = name;
        _dotlock = new Dotlock(path);
    }

    public long OriginalSize { get; private set; }

    public static async Task<(MailboxAppender? Appender, DeliveryStatus Status)> OpenAsync(
        string shortName, uint expectedUid, SpoolSettings settings, InProcessMailboxLocks locks, CancellationToken cancellationToken)
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

    /// <summary>Restores the size recorded under the lock. Returns an error text when that failed.</summary>
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
