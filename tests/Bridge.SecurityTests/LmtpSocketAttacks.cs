using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.SecurityTests;

/// <summary>Issue #23 items 2 and 3: the LMTP socket lives in a directory someone else can write (the intruder's own
/// here; Postfix's private/ belongs to postfix). The intruder renames symbolic links to a root-only file over the
/// socket's name as fast as it can while Bridge starts: nothing Bridge does to its socket may reach that file. And a
/// second Bridge never takes over a socket the first one still listens on.</summary>
public class LmtpSocketAttacks
{
    [Fact]
    public async Task Links_renamed_over_the_socket_while_bridge_starts_never_steer_its_chmod_or_chown()
    {
        var intruder = await Intruder.EnsureAsync();
        using var directory = intruder.Home("bridge-sockdir");
        using var secret = new TempDir("bridge-secret", TempDir.Mode("700"));
        await File.WriteAllTextAsync(secret["only-root"], "root's\n");
        File.SetUnixFileMode(secret["only-root"], TempDir.Mode("600"));
        Assert.Equal(0, Libc.Lstat(secret["only-root"], out var before));
        var socket = directory["lmtp"];

        // The attack of the issue: inotify on the directory, and the moment the name appears there, a symlink to the
        // target renamed over it, in C (what the report used: it won the race on the first try).
        var racer = await StartRacerAsync(intruder, directory, secret["only-root"], socket);
        try
        {
            var started = 0;
            var refusals = new List<string>();
            for (var round = 0; round < 10; round++)
            {
                File.Delete(socket); // the intruder clears its directory for the next try
                try
                {
                    await using var daemon = await Daemon.StartAsync(RunAs.Root, $"Bridge:Lmtp:Socket={socket}", "Bridge:Lmtp:SocketMode=0666",
                        "Bridge:Lmtp:SocketGroup=root");
                    started++;
                }
                catch (Exception ex) when (ex is Xunit.Sdk.XunitException)
                {
                    // It may refuse to start ("replaced at once"): the attacker can make the socket unusable, nothing more.
                    Assert.True(ex.Message.Contains("Bridge:Lmtp:Socket", StringComparison.Ordinal), ex.Message); // the whole output when it is another reason
                    refusals.Add(ex.Message);
                }
                Assert.Equal(0, Libc.Lstat(secret["only-root"], out var after));
                Assert.Equal((before.Permissions, before.Uid, before.Gid), (after.Permissions, after.Uid, after.Gid));
            }
            Assert.False(racer.HasExited, "the attack ran the whole time");
            // Proof that the race was run: Bridge either started despite it or saw its socket replaced at once (a run in
            // which every start failed for another reason would prove nothing).
            Assert.True(started > 0 || refusals.Any(r => r.Contains("was replaced at once", StringComparison.Ordinal)),
                $"no start succeeded and none saw the race; the first refusal: {refusals.FirstOrDefault()}"); // a run where every start is refused proves nothing
        }
        finally
        {
            racer.Kill();
            await racer.WaitForExitAsync();
            racer.Dispose();
        }
        Assert.DoesNotContain(Directory.GetDirectories(directory.Path), d => Path.GetFileName(d).StartsWith(".lmtp.bridge-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Check_names_the_users_who_can_write_the_sockets_directory()
    {
        var intruder = await Intruder.EnsureAsync();
        using var directory = intruder.Home("bridge-sockdir");
        await using var daemon = await Daemon.StartAsync(RunAs.Root, $"Bridge:Lmtp:Socket={directory["lmtp"]}");
        var check = await BridgeProcess.RunToExitAsync(daemon.Work, ["check",
            .. Daemon.Arguments(daemon.Spool, daemon.State, daemon.Port, [$"Bridge:Lmtp:Socket={directory["lmtp"]}"])]);
        Assert.Contains($"lmtp {directory["lmtp"]}: its directory {directory.Path} can be written by {Intruder.Login} (its owner) besides root",
            check.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_second_bridge_refuses_to_start_on_a_socket_the_first_one_listens_on()
    {
        using var directory = new TempDir("bridge-sockdir", TempDir.Mode("755"));
        var socket = directory["lmtp"];
        await using var first = await Daemon.StartAsync(RunAs.Root, $"Bridge:Lmtp:Socket={socket}");
        Assert.Equal(0, Libc.Lstat(socket, out var ours));

        using var work = new TempDir("bridge-second", TempDir.Mode("755"));
        await File.WriteAllTextAsync(work["appsettings.json"], "{}");
        var second = await BridgeProcess.RunToExitAsync(work, [.. Daemon.Arguments(first.Spool, first.State, FreePort.Next(), [$"Bridge:Lmtp:Socket={socket}"])]);

        Assert.Equal(69, second.ExitCode);
        Assert.Contains($"cannot listen for LMTP on {socket}: another program listens on the socket", second.Output, StringComparison.Ordinal);
        Assert.Contains("Bridge:Lmtp:Socket", second.Output, StringComparison.Ordinal);
        Assert.Equal(0, Libc.Lstat(socket, out var still));
        Assert.True(still.SameFileAs(ours), "the first Bridge's socket is still there");
        var (session, greeting) = await RawSmtp.ConnectUnixAsync(socket);
        using (session)
        {
            Assert.StartsWith("220 ", greeting, StringComparison.Ordinal);
        }
    }

    /// <summary>Compiles the racer (gcc) and starts it as the intruder.</summary>
    private static async Task<System.Diagnostics.Process> StartRacerAsync(Intruder intruder, TempDir directory, string target, string socket)
    {
        var gcc = Peers.Require("gcc", "gcc");
        var source = directory["racer.c"];
        await File.WriteAllTextAsync(source, $$"""
            #include <stdio.h>
            #include <string.h>
            #include <unistd.h>
            #include <sys/inotify.h>
            #include <time.h>
            int main(void) {
                const char *tmp = "{{directory["tmp"]}}", *sock = "{{socket}}", *target = "{{target}}";
                char buffer[4096] __attribute__((aligned(8)));
                int fd = inotify_init();
                inotify_add_watch(fd, "{{directory.Path}}", IN_CREATE | IN_MOVED_TO);
                time_t end = time(NULL) + 60;
                symlink(target, tmp);
                while (time(NULL) < end) {
                    ssize_t n = read(fd, buffer, sizeof buffer);
                    for (char *p = buffer; n > 0 && p < buffer + n;) {
                        struct inotify_event *e = (struct inotify_event *)p;
                        if (e->len && strcmp(e->name, "lmtp") == 0) {
                            rename(tmp, sock);
                            symlink(target, tmp);
                        }
                        p += sizeof *e + e->len;
                    }
                }
                return 0;
            }
            """);
        var built = await Proc.RunAsync(gcc, ["-O2", "-o", directory["racer"], source]);
        Assert.True(built.ExitCode == 0, built.Output);
        var info = new System.Diagnostics.ProcessStartInfo("setpriv") { UseShellExecute = false };
        foreach (var arg in new[] { $"--reuid={intruder.Uid}", $"--regid={intruder.Gid}", "--clear-groups", "--inh-caps=-all", "--", directory["racer"] })
        {
            info.ArgumentList.Add(arg);
        }
        var process = System.Diagnostics.Process.Start(info)!;
        await Task.Delay(200); // watching before Bridge starts
        return process;
    }

    private static string Py(string value) => "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal) + "'";
}
