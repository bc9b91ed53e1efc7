// Job: run another program's configuration tool (postconf, postmap, doveconf) for `mailbridge check`: find it where
// Debian installs it, run it with a time limit, return its output.
// Failure: none thrown; a missing program is null from Find, a failing or hanging one is (false, its message).
using System.Diagnostics;

namespace Bridge.Operations;

internal static class ConfigTool
{
    private static readonly string[] SearchPath = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"];

    public static string? Find(string program) => SearchPath.Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);

    /// <returns>Standard output when the program succeeded, else its standard error (or why it could not run).</returns>
    public static async Task<(bool Ok, string Output)> RunAsync(string program, IEnumerable<string> args, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        try
        {
            using var process = Process.Start(info)!;
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            return (process.ExitCode == 0, process.ExitCode == 0 ? await stdout.ConfigureAwait(false) : await stderr.ConfigureAwait(false));
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or OperationCanceledException or InvalidOperationException)
        {
            return (false, ex.Message);
        }
    }
}
