// Job: real system accounts for the tests (passwd entries with their own uid), created on first use:
// mailbox ownership, UseSystemAccounts routing and Dovecot's per-user access need real uids.
// Failure: useradd errors fail the test with its output.
using Bridge.Native;

namespace Bridge.Tests.Support;

public static class TestAccounts
{
    private static readonly SemaphoreSlim Gate = new(1, 1);

    public const string Alice = "bridgetest1";
    public const string Bob = "bridgetest2";
    public const string Carol = "bridgetest3";

    public static async Task<(uint Uid, uint Gid)> EnsureAsync(string login)
    {
        Peers.RequireRoot();
        await Gate.WaitAsync();
        try
        {
            if (Libc.GetPasswdEntry(login) is { } existing)
            {
                return existing;
            }
            var result = await Proc.RunAsync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", login]);
            if (result.ExitCode != 0)
            {
                throw new InvalidOperationException($"useradd {login} failed: {result.Output}");
            }
            return Libc.GetPasswdEntry(login) ?? throw new InvalidOperationException($"{login} missing after useradd");
        }
        finally
        {
            Gate.Release();
        }
    }
}
