// Job: the user next door, for the security tier: a real unprivileged account (created with useradd on first use) that
// runs the attacking steps with its own rights only (setpriv: its uid, its gid, no supplementary groups, no
// capabilities), and a folder of its own to work in.
// Failure: useradd or setpriv errors fail the test with their output; an attack step's own result is returned.
using Bridge.Native;

namespace Bridge.Tests.Support;

public sealed class Intruder
{
    public const string Login = "bridgeintruder";

    private Intruder((uint Uid, uint Gid) ids) => (Uid, Gid) = ids;

    public uint Uid { get; }

    public uint Gid { get; }

    public static async Task<Intruder> EnsureAsync() => new(await TestAccounts.EnsureAsync(Login));

    /// <summary>A temporary folder owned by the intruder (mode 0755): what a home directory is to its user.</summary>
    public TempDir Home(string prefix = "bridge-intruder")
    {
        var dir = new TempDir(prefix, TempDir.Mode("755"));
        Assert.Equal(0, Libc.Lchown(dir.Path, Uid, Gid));
        return dir;
    }

    /// <summary>Runs a shell command as the intruder.</summary>
    public Task<ProcResult> ShAsync(string command, TimeSpan? timeout = null) =>
        Proc.RunAsync("setpriv", [$"--reuid={Uid}", $"--regid={Gid}", "--clear-groups", "--inh-caps=-all", "--", "/bin/sh", "-c", command],
            timeout: timeout ?? TimeSpan.FromSeconds(60));

    /// <summary>Runs a python3 program as the intruder.</summary>
    public Task<ProcResult> PythonAsync(string program, TimeSpan? timeout = null) =>
        Proc.RunAsync("setpriv", [$"--reuid={Uid}", $"--regid={Gid}", "--clear-groups", "--inh-caps=-all", "--", "/usr/bin/python3", "-c", program],
            timeout: timeout ?? TimeSpan.FromSeconds(60));

    /// <summary>A python3 program as the intruder, left running (for races); kill it with the returned process.</summary>
    public static System.Diagnostics.Process StartPython(Intruder intruder, string program)
    {
        var info = new System.Diagnostics.ProcessStartInfo("setpriv") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { $"--reuid={intruder.Uid}", $"--regid={intruder.Gid}", "--clear-groups", "--inh-caps=-all", "--", "/usr/bin/python3", "-c", program })
        {
            info.ArgumentList.Add(arg);
        }
        return System.Diagnostics.Process.Start(info)!;
    }
}
