// Job: run a real peer program (swaks, python3, formail, postfix, ...) and collect its exit code and output.
// Failure: a program that outlives its time limit is killed and reported as a test failure.
using System.Diagnostics;
using System.Text;

namespace Bridge.Tests.Support;

public sealed record ProcResult(int ExitCode, string Stdout, string Stderr)
{
    public string Output => Stdout + Stderr;
}

public static class Proc
{
    public static async Task<ProcResult> RunAsync(string file, IEnumerable<string> args, string? stdin = null,
        TimeSpan? timeout = null, byte[]? stdinBytes = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdinBytes is not null)
        {
            await process.StandardInput.BaseStream.WriteAsync(stdinBytes);
        }
        else if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin);
        }
        process.StandardInput.Close();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in time");
        }
        return new ProcResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Runs a program that daemonises (postfix, dovecot) with its output discarded, as the peers
    /// keep the caller's stdout open otherwise.</summary>
    public static async Task<int> RunDetachedAsync(string file, params string[] args)
    {
        var command = new StringBuilder();
        command.Append("exec ").Append(Quote(file));
        foreach (var arg in args)
        {
            command.Append(' ').Append(Quote(arg));
        }
        command.Append(" </dev/null >/dev/null 2>&1");
        var result = await RunAsync("/bin/sh", ["-c", command.ToString()]);
        return result.ExitCode;
    }

    public static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
