// Job: the Dovecot post-login client as the package ships it (src/Bridge.DovecotCollect, published with Native AOT by
// test.sh into .artifacts/), and a post-login script that points it at a test's collect socket (script-login clears
// the environment, so a wrapper sets BRIDGE_COLLECT_SOCKET and execs it).
// Failure: a client that was not published fails the test saying how to publish it.
namespace Bridge.Tests.Support;

public static class DovecotCollectClient
{
    /// <summary>The published client.</summary>
    public static string Path
    {
        get
        {
            var path = System.IO.Path.Combine(Repository.Root, ".artifacts", "dovecot-collect", "dovecot-collect");
            if (!File.Exists(path))
            {
                throw new InvalidOperationException($"{path} is missing: run ./test.sh, which publishes it, or " +
                    "dotnet publish src/Bridge.DovecotCollect -c Release -r linux-x64 -o .artifacts/dovecot-collect");
            }
            return path;
        }
    }

    /// <summary>A post-login script in <paramref name="dir"/> that runs the client against <paramref name="socket"/>.</summary>
    public static async Task<string> ScriptAsync(TempDir dir, string socket, int timeoutSeconds = 30)
    {
        var script = dir["post-login"];
        var client = dir["dovecot-collect"]; // a copy Dovecot's post-login user can reach, wherever the checkout is
        File.Copy(Path, client, overwrite: true);
        File.SetUnixFileMode(client, TempDir.Mode("755"));
        await File.WriteAllTextAsync(script,
            $"#!/bin/sh\nBRIDGE_COLLECT_SOCKET={Proc.Quote(socket)} BRIDGE_COLLECT_TIMEOUT={timeoutSeconds} exec {Proc.Quote(client)} \"$@\"\n");
        File.SetUnixFileMode(script, TempDir.Mode("755"));
        return script;
    }
}
