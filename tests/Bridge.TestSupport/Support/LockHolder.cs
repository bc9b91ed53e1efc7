// Job: another real program holding a mailbox lock while Bridge delivers: python's fcntl.lockf (a POSIX
// whole-file write lock, as Postfix, Dovecot and mutt take) or procmail's lockfile (a dotlock).
// Failure: a holder that does not report its lock within 10 s fails the test.
using System.Diagnostics;

namespace Bridge.Tests.Support;

public sealed class LockHolder : IDisposable
{
    private readonly Process _process;

    private LockHolder(Process process) => _process = process;

    /// <summary>Holds an fcntl write lock on <paramref name="path"/> for <paramref name="seconds"/>.</summary>
    public static async Task<LockHolder> FcntlAsync(string path, double seconds)
    {
        var python = Peers.Require("python3", "python3");
        var info = new ProcessStartInfo(python) { RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("import fcntl,sys,time\nf=open(sys.argv[1],'r+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(float(sys.argv[2]))");
        info.ArgumentList.Add(path);
        info.ArgumentList.Add(seconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var process = Process.Start(info)!;
        var line = process.StandardOutput.ReadLineAsync();
        if (await Task.WhenAny(line, Task.Delay(10_000)) != line || await line != "locked")
        {
            process.Kill();
            throw new InvalidOperationException("python did not take the fcntl lock");
        }
        return new LockHolder(process);
    }

    /// <summary>Takes <paramref name="path"/>.lock with procmail's lockfile (it stays until removed).</summary>
    public static async Task TakeDotlockAsync(string mailboxPath)
    {
        var lockfile = Peers.Require("lockfile", "procmail");
        var result = await Proc.RunAsync(lockfile, ["-r0", mailboxPath + ".lock"]);
        Assert.True(result.ExitCode == 0, $"lockfile failed: {result.Output}");
    }

    public Task Exited => _process.WaitForExitAsync();

    /// <summary>Ends the holder (its lock goes with it); a second call does nothing.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }
        _process.Dispose();
    }

    private bool _disposed;
}
