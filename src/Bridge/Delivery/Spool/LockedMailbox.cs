// Job: one mailbox held open and locked the way a trusted local delivery agent holds it: in-process lock, open with
// O_NOFOLLOW|O_APPEND (a delivery creates a missing mailbox O_EXCL 0600 and gives it to its user), the rules of
// MailboxSafety checked on the open file, the dotlock and a whole-file fcntl (OFD) write lock taken non-blocking with
// jittered retries, the path checked to still name the locked file (another program may have renamed a rewritten
// mailbox over it meanwhile: then it is opened again from the start), a cut a crash interrupted finished (MailboxCut)
// and an append settled (AppendRecovery), then the real end of the file recorded. Offers the three primitives the append protocol
// (AppendBatch) is made of: write a record at the end, fsync, truncate back. Used by deliveries, by recovery at
// start, and by drain and probe (which open existing mailboxes only).
// Failure: every problem is a SpoolResult; the locks are released on every failure and on Dispose; the file is never
// written before all checks passed.
using Bridge.Native;

namespace Bridge.Delivery.Spool;

/// <summary>What opening produced: the locked mailbox, or why not; and what recovery and lock-taking had to say.</summary>
internal readonly record struct OpenedMailbox(LockedMailbox? Mailbox, SpoolResult Result, IReadOnlyList<RecoveryNote> Notes);

internal sealed class LockedMailbox : IDisposable
{
    private static readonly int OpenFlags = Libc.O_WRONLY | Libc.O_APPEND | Libc.O_NONBLOCK | Libc.O_NOFOLLOW | Libc.O_NOCTTY | Libc.O_CLOEXEC;

    private readonly Dotlock _dotlock;
    private readonly List<RecoveryNote> _notes;
    private IDisposable? _processLock;
    private int _fd = -1;
    private bool _fileLocked;
    private uint? _owner;

    private LockedMailbox(string path, string name, List<RecoveryNote> notes)
    {
        Path = path;
        Name = name;
        _notes = notes;
        _dotlock = new Dotlock(path);
    }

    public string Path { get; }

    /// <summary>The short name (the file's name in the spool directory).</summary>
    public string Name { get; }

    /// <summary>The open file (for MailboxRewrite and the verbs that read it under the locks).</summary>
    public int Fd => _fd;

    /// <summary>fstat under the locks: Size is the real end, where the first append lands.</summary>
    public FileStat Stat { get; private set; }

    /// <summary>A descriptor of its own for reading the locked mailbox (collections read with a separate offset),
    /// opened without following a link and only when it is the very file the locks are held on; -1 otherwise. The
    /// one way readers of a locked mailbox open it (drain, collection, recovery), so a cut never acts on a file other
    /// than the one that was read.</summary>
    public int OpenReader()
    {
        var reader = Libc.Open(Path, Libc.O_RDONLY | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
        if (reader >= 0 && (Libc.Fstat(reader, out var opened) != 0 || !opened.SameFileAs(Stat)))
        {
            Libc.Close(reader);
            return -1;
        }
        return reader;
    }

    /// <summary>Where the next record is written (Stat.Size until something was appended).</summary>
    public long End { get; private set; }

    /// <summary>For a delivery: creates the mailbox for <paramref name="ownerUid"/> when it does not exist, and refuses one
    /// that is not the owner's.</summary>
    public static Task<OpenedMailbox> OpenForDeliveryAsync(string shortName, uint ownerUid, SpoolSettings settings,
        InProcessMailboxLocks locks, AppendJournal journal, CancellationToken cancellationToken) =>
        OpenAsync(shortName, ownerUid, create: true, settings, locks, journal, cancellationToken);

    /// <summary>For recovery, drain and probe: an existing mailbox only (the owner checked when known).</summary>
    public static Task<OpenedMailbox> OpenExistingAsync(string shortName, uint? ownerUid, SpoolSettings settings,
        InProcessMailboxLocks locks, AppendJournal journal, CancellationToken cancellationToken) =>
        OpenAsync(shortName, ownerUid, create: false, settings, locks, journal, cancellationToken);

    private static async Task<OpenedMailbox> OpenAsync(string shortName, uint? ownerUid, bool create, SpoolSettings settings,
        InProcessMailboxLocks locks, AppendJournal journal, CancellationToken cancellationToken)
    {
        var path = System.IO.Path.Combine(settings.Directory, shortName);
        var notes = new List<RecoveryNote>();
        for (var attempt = 0; ; attempt++)
        {
            var deadline = DateTime.UtcNow + settings.LockTimeout;
            var mailbox = new LockedMailbox(path, shortName, notes);
            var keep = false;
            try
            {
                var (result, rewritten) = await mailbox.LockAndSettleAsync(ownerUid, create, settings, locks, journal, deadline, cancellationToken)
                    .ConfigureAwait(false);
                if (rewritten && attempt < 2)
                {
                    continue; // another program renamed a new file over the mailbox: lock and check that one from the start
                }
                if (rewritten)
                {
                    result = SpoolResult.Retry(shortName, $"mailbox {shortName} keeps being replaced by another program, try again");
                }
                keep = result.IsOk;
                return new OpenedMailbox(keep ? mailbox : null, result, notes);
            }
            finally
            {
                if (!keep)
                {
                    mailbox.Dispose();
                }
            }
        }
    }

    private async Task<(SpoolResult Result, bool Rewritten)> LockAndSettleAsync(uint? ownerUid, bool create, SpoolSettings settings,
        InProcessMailboxLocks locks, AppendJournal journal, DateTime deadline, CancellationToken cancellationToken)
    {
        _processLock = await locks.TryEnterAsync(Path, settings.LockTimeout, cancellationToken).ConfigureAwait(false);
        if (_processLock is null)
        {
            return (cancellationToken.IsCancellationRequested ? SpoolResult.Stopping() : SpoolResult.Busy(Name), false);
        }
        var result = create ? OpenOrCreate(ownerUid!.Value, settings) : OpenExisting();
        if (result.IsOk)
        {
            result = CheckOpened(ownerUid);
        }
        if (result.IsOk)
        {
            result = await LockAsync(settings, deadline, cancellationToken).ConfigureAwait(false);
        }
        if (!result.IsOk)
        {
            return (result, false);
        }
        if (!PathStillNamesTheFile())
        {
            // Renamed over while this waited for the locks (drain's or recovery's rewrite, by another process): the
            // descriptor is a file nobody reads any more. Open the new one from the start.
            return (SpoolResult.Ok, true);
        }
        if (MailboxCut.Settle(_fd, Path, Name, journal) is { } cutNote)
        {
            _notes.Add(cutNote);
            if (cutNote.Critical && journal.ReadEntry(Name, MailboxCut.Kind, out _) is not null)
            {
                return (SpoolResult.Retry(Name, $"mailbox {Name}: a cut a crash interrupted could not be finished yet"), false);
            }
        }
        var recovery = AppendRecovery.Settle(_fd, Path, Name, journal);
        if (recovery.Note is { } note)
        {
            _notes.Add(note);
        }
        if (recovery.Unsettled)
        {
            // The interrupted append is still to be settled: appending now would replace its journal entry.
            return (SpoolResult.Retry(Name, $"mailbox {Name}: an append a crash interrupted could not be settled yet"), false);
        }
        return (CheckAfterLock(), false);
    }

    private bool PathStillNamesTheFile() =>
        Libc.Fstat(_fd, out var locked) == 0 && Libc.Lstat(Path, out var named) == 0 && named.SameFileAs(locked);

    private SpoolResult OpenExisting()
    {
        _fd = Libc.Open(Path, OpenFlags, 0);
        if (_fd >= 0)
        {
            return SpoolResult.Ok;
        }
        var errno = Libc.LastError;
        return errno == Libc.ELOOP ? SpoolResult.Unusable(Name, "it is a symbolic link", errno) : SpoolResult.Unusable(Name, Libc.Describe(errno), errno);
    }

    private SpoolResult OpenOrCreate(uint ownerUid, SpoolSettings settings)
    {
        for (var attempt = 0; attempt < 3; attempt++)
        {
            _fd = Libc.Open(Path, OpenFlags, 0);
            if (_fd >= 0)
            {
                return SpoolResult.Ok;
            }
            var errno = Libc.LastError;
            if (errno == Libc.ELOOP)
            {
                return SpoolResult.Unusable(Name, "it is a symbolic link", errno);
            }
            if (errno != Libc.ENOENT)
            {
                return OpenError(errno);
            }
            _fd = Libc.Open(Path, OpenFlags | Libc.O_CREAT | Libc.O_EXCL, 0x180 /* 0600 */);
            if (_fd >= 0)
            {
                var gid = settings.MailGroupId ?? Libc.Getegid();
                if (Libc.Fchown(_fd, ownerUid, gid) != 0)
                {
                    var chownError = Libc.LastError;
                    Libc.Unlink(Path);
                    return SpoolResult.Failed(Name, $"cannot give new mailbox {Name} to uid {ownerUid} gid {gid}: {Libc.Describe(chownError)}", chownError);
                }
                return SpoolResult.Ok;
            }
            errno = Libc.LastError;
            if (errno != Libc.EEXIST)
            {
                return OpenError(errno);
            }
        }
        return SpoolResult.Failed(Name, $"cannot open mailbox {Name}: it keeps appearing and disappearing");
    }

    private SpoolResult OpenError(int errno) => SpoolErrno.Classify(errno, SpoolStep.MailboxOpen, Name, Path);

    private SpoolResult CheckOpened(uint? ownerUid)
    {
        if (Libc.Fstat(_fd, out var opened) != 0)
        {
            return SpoolResult.Failed(Name, $"fstat {Name}: {Libc.Describe(Libc.LastError)}", Libc.LastError);
        }
        _owner = opened.Uid; // whose mail this is: only their (or root's) dotlock holds it back
        if (MailboxSafety.Problem(opened, ownerUid) is { } flaw)
        {
            return SpoolResult.Unusable(Name, "it " + flaw.Text);
        }
        if (Libc.Lstat(Path, out var named) != 0 || !named.SameFileAs(opened))
        {
            return SpoolResult.Unusable(Name, "it was replaced while being opened");
        }
        return SpoolResult.Ok;
    }

    private async Task<SpoolResult> LockAsync(SpoolSettings settings, DateTime deadline, CancellationToken cancellationToken)
    {
        while (true)
        {
            var dot = _dotlock.TryAcquire(settings.DotlockStaleAfter, out var errno, _owner);
            if (_dotlock.Note is { } lockNote)
            {
                _notes.Add(new RecoveryNote(false, lockNote));
            }
            if (dot == DotlockResult.Failed)
            {
                return SpoolErrno.Classify(errno, SpoolStep.Dotlock, Name, _dotlock.Path);
            }
            if (dot == DotlockResult.Acquired)
            {
                var lockError = Libc.TryLockWholeFile(_fd);
                if (lockError == 0)
                {
                    _fileLocked = true;
                    return SpoolResult.Ok;
                }
                _dotlock.Release();
                if (lockError is not (Libc.EAGAIN or Libc.EACCES))
                {
                    return SpoolResult.Failed(Name, $"fcntl lock {Name}: {Libc.Describe(lockError)}", lockError);
                }
            }
            var pause = TimeSpan.FromMilliseconds(Random.Shared.Next(50, 250));
            if (DateTime.UtcNow + pause > deadline)
            {
                return SpoolResult.Busy(Name);
            }
            try
            {
                await Task.Delay(pause, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return SpoolResult.Stopping();
            }
        }
    }

    private SpoolResult CheckAfterLock()
    {
        if (Libc.Fstat(_fd, out var locked) != 0)
        {
            return SpoolResult.Failed(Name, $"fstat {Name}: {Libc.Describe(Libc.LastError)}", Libc.LastError);
        }
        if (locked.Links != 1)
        {
            return SpoolResult.Unusable(Name, $"it has {locked.Links} hard links");
        }
        Stat = locked;
        End = locked.Size; // the real end: O_APPEND writes land here while we hold the locks
        return SpoolResult.Ok;
    }

    /// <summary>Writes one record at the end (AppendBatch journals it first).</summary>
    public SpoolResult Append(MboxRecord record)
    {
        var sink = new PageAlignedSink(_fd, End);
        var rc = record.WriteTo(sink);
        if (rc == 0)
        {
            rc = sink.Flush();
        }
        End = sink.Position;
        return rc == 0 ? SpoolResult.Ok : SpoolErrno.Classify(rc, SpoolStep.MailboxData, Name, "write to");
    }

    public SpoolResult Sync() =>
        Libc.Fsync(_fd) == 0 ? SpoolResult.Ok : SpoolErrno.Classify(Libc.LastError, SpoolStep.MailboxData, Name, "fsync");

    /// <summary>Cuts the file back to <paramref name="size"/> (and fsyncs when asked).</summary>
    public SpoolResult TruncateTo(long size, bool sync)
    {
        if (Libc.Ftruncate(_fd, size) != 0 || (sync && Libc.Fsync(_fd) != 0))
        {
            var errno = Libc.LastError;
            return SpoolResult.Failed(Name, $"cannot truncate {Path} back to {size} bytes: {Libc.Describe(errno)}", errno);
        }
        End = size;
        return SpoolResult.Ok;
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
}
