// Job: Bridge as its own OS process, started the way an admin starts it (dotnet mailbridge.dll in a working
// directory holding appsettings.json), for what needs a real process: signals, exit codes, privileges.
// Failure: a daemon that does not report "listening" within 30 s fails the test with its output.
using System.Collections.Concurrent;
using System.Diagnostics;
using Bridge.Native;

namespace Bridge.Tests.Support;

public sealed class BridgeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();

    private BridgeProcess(Process process) => _process = process;

    public IReadOnlyList<string> Lines => [.. _lines];

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>A copy of the built daemon in a world-readable folder (an unprivileged user can run it too).</summary>
    public static string CopyDaemon(TempDir dir)
    {
        foreach (var file in Directory.GetFiles(AppContext.BaseDirectory))
        {
            var name = Path.GetFileName(file);
            if (name.StartsWith("mailbridge", StringComparison.Ordinal) || name.EndsWith(".dll", StringComparison.Ordinal))
            {
                File.Copy(file, dir[name]);
            }
        }
        return dir["mailbridge.dll"];
    }

    /// <summary>Runs the executable to its end in <paramref name="workingDirectory"/> (e.g. `check`, or a start that must fail).</summary>
    public static Task<ProcResult> RunToExitAsync(TempDir workingDirectory, params string[] args) => RunToExitAsync(workingDirectory, null, args);

    /// <param name="environment">Variables the program gets in addition (e.g. MAIL_CONFIG for `check`).</param>
    public static Task<ProcResult> RunToExitAsync(TempDir workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        // BRIDGE_EXECUTABLE (see StartUnderAsync) runs the verbs of another build too, e.g. to show a test fails before a fix.
        var command = Environment.GetEnvironmentVariable("BRIDGE_EXECUTABLE") is { Length: > 0 } other
            ? Proc.Quote(other)
            : "dotnet " + Proc.Quote(File.Exists(workingDirectory["mailbridge.dll"]) ? workingDirectory["mailbridge.dll"] : CopyDaemon(workingDirectory));
        return Proc.RunAsync("/bin/sh", ["-c", $"cd {Proc.Quote(workingDirectory.Path)} && exec {command} {string.Join(' ', args.Select(Proc.Quote))}"],
            timeout: TimeSpan.FromSeconds(30), environment: environment);
    }

    /// <summary>Runs the executable to its end as the unprivileged user nobody.</summary>
    public static Task<ProcResult> RunAsNobodyAsync(TempDir workingDirectory, params string[] args)
    {
        var dll = File.Exists(workingDirectory["mailbridge.dll"]) ? workingDirectory["mailbridge.dll"] : CopyDaemon(workingDirectory);
        var dotnet = Environment.ProcessPath!.EndsWith("dotnet", StringComparison.Ordinal) ? Environment.ProcessPath : "/usr/bin/dotnet";
        return Proc.RunAsync("setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups",
            "env", $"HOME={workingDirectory.Path}", "DOTNET_CLI_TELEMETRY_OPTOUT=1", dotnet, dll, .. args], timeout: TimeSpan.FromSeconds(30));
    }

    public static Task<BridgeProcess> StartAsync(TempDir workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] args) =>
        StartUnderAsync([], workingDirectory, environment, args);

    /// <param name="wrapper">A command the daemon runs under, e.g. ["prlimit", "--fsize=1000"].</param>
    public static async Task<BridgeProcess> StartUnderAsync(string[] wrapper, TempDir workingDirectory,
        IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        // BRIDGE_EXECUTABLE=/usr/lib/bridge/mailbridge runs another build (e.g. the package's self-contained one) instead.
        var executable = Environment.GetEnvironmentVariable("BRIDGE_EXECUTABLE") is { Length: > 0 } other ? other : null;
        var dll = executable ?? (File.Exists(workingDirectory["mailbridge.dll"]) ? workingDirectory["mailbridge.dll"] : CopyDaemon(workingDirectory));
        var host = executable ?? "dotnet";
        var info = new ProcessStartInfo(wrapper.Length > 0 ? wrapper[0] : host)
        {
            WorkingDirectory = workingDirectory.Path,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var part in wrapper.Skip(1).Append(wrapper.Length > 0 ? host : null).OfType<string>())
        {
            info.ArgumentList.Add(part);
        }
        if (executable is null)
        {
            info.ArgumentList.Add(dll);
        }
        info.ArgumentList.Add("--Bridge:Collect:Socket="); // never the machine's /run/bridge/collect; a test that wants one names its own
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }
        var process = Process.Start(info)!;
        var bridge = new BridgeProcess(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { bridge._lines.Enqueue(e.Data); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { bridge._lines.Enqueue(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await bridge.WaitForLineAsync("Bridge listening on", TimeSpan.FromSeconds(30));
        return bridge;
    }

    public async Task WaitForLineAsync(string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!_lines.Any(l => l.Contains(text, StringComparison.Ordinal)))
        {
            if (clock.Elapsed > timeout || _process.HasExited)
            {
                if (_process.HasExited)
                {
                    await _process.WaitForExitAsync(); // its last lines (why it stopped) are still on their way from the pipes
                    if (_lines.Any(l => l.Contains(text, StringComparison.Ordinal)))
                    {
                        return;
                    }
                }
                Assert.Fail($"bridge did not log \"{text}\" (exited: {_process.HasExited}). Its output:\n{string.Join('\n', _lines)}");
            }
            await Task.Delay(100);
        }
    }

    /// <summary>The daemon's exit code, once it has exited by itself.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        return _process.ExitCode;
    }

    public void Signal(int signal) => Assert.Equal(0, Libc.Kill(_process.Id, signal));

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
