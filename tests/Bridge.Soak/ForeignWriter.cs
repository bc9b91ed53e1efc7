// Job: other programs appending to the spools while Bridge delivers and collects, as the mailbox's owner (setpriv):
// one that locks as procmail and Postfix do (dotlock, then fcntl), and one that takes only the fcntl lock on a
// descriptor it opened once at the start and keeps (the writer that loses mail when anyone replaces the mailbox's
// inode). Each is a python3 process; it prints a message's id only after the record is fsync'ed, and undoes a record
// it could not write whole (a full file system), so the ledger holds exactly what must be found.
// Failure: a writer that cannot start throws; its lines are read until it ends.
using System.Diagnostics;
using Bridge.Tests.Support;

namespace Bridge.Soak;

internal sealed class ForeignWriter : IAsyncDisposable
{
    private const string Script = """
        import fcntl, os, sys, time, random, signal
        stop = [False]
        signal.signal(signal.SIGTERM, lambda *a: stop.__setitem__(0, True))
        path, mode, prefix, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        rnd = random.Random(seed)
        kept = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if mode == 'fcntl' else None
        n = 0
        while not stop[0]:
            time.sleep(rnd.uniform(0.05, 0.6))
            mid = '%s-%d' % (prefix, n)
            lock = path + '.lock'
            if mode == 'dotlock':
                while True:
                    try:
                        os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)); break
                    except FileExistsError:
                        time.sleep(0.05)
                    except OSError:
                        time.sleep(0.2)
            fd = kept if kept is not None else os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)
                size = os.lseek(fd, 0, os.SEEK_END)
                body = ''.join(rnd.choice(['From inside the body\n', '>From quoted\n', 'plain text line of the foreign writer\n', '.\n'])
                               for _ in range(rnd.randint(3, 60)))
                body = ''.join(('>' + l if l.lstrip('>').startswith('From ') else l) for l in body.splitlines(True))
                record = ('From foreign@example.org  %s\nReturn-Path: <foreign@example.org>\nMessage-Id: <%s@soak.test>\nX-Soak: %s\n'
                          'Subject: foreign %s\n\n%send of %s\n\n') % (time.asctime(time.gmtime()), mid, mid, mid, body, mid)
                try:
                    data = record.encode()
                    if os.write(fd, data) != len(data):
                        raise OSError(28, 'short write')  # a full file system takes part of a record: it is taken back
                    os.fsync(fd)
                except OSError:
                    os.ftruncate(fd, size)  # a full file system: the record is taken back whole
                    continue
                finally:
                    fcntl.lockf(fd, fcntl.LOCK_UN)
                print('%s %s' % (mid, time.strftime('%H:%M:%S', time.gmtime())), flush=True)
                n += 1
            finally:
                if kept is None:
                    os.close(fd)
                if mode == 'dotlock':
                    try: os.unlink(lock)
                    except OSError: pass
        """;

    private readonly Process _process;

    private ForeignWriter(Process process) => _process = process;

    /// <summary>The id of each record the writer fsync'ed.</summary>
    private List<string> Written { get; } = [];

    public static async Task<ForeignWriter> StartAsync(string mailbox, string user, string mode, string prefix, int seed)
    {
        var (uid, gid) = await TestAccounts.EnsureAsync(user);
        var info = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { $"--reuid={uid}", $"--regid={gid}", "--clear-groups", Peers.Require("python3", "python3"), "-c", Script, mailbox, mode, prefix, seed.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            info.ArgumentList.Add(arg);
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start the foreign writer");
        var writer = new ForeignWriter(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { Length: > 0 } line)
            {
                lock (writer.Written)
                {
                    writer.Written.Add(line);
                }
            }
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) { Console.Error.WriteLine($"foreign writer {prefix}: {e.Data}"); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await Task.Delay(200);
        return writer;
    }

    public IReadOnlyList<string> Ids
    {
        get
        {
            lock (Written)
            {
                return [.. Written.Select(l => l.Split(' ')[0])];
            }
        }
    }

    /// <summary>Each record's id and the time it was fsync'ed (UTC), as the writer printed them.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (Written)
            {
                return [.. Written];
            }
        }
    }

    /// <summary>Stops the writer after the record it is writing (SIGTERM; it finishes, prints and ends).</summary>
    public async Task StopAsync()
    {
        if (!_process.HasExited)
        {
            _ = Bridge.Native.Libc.Kill(_process.Id, 15);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _process.WaitForExitAsync(wait.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
