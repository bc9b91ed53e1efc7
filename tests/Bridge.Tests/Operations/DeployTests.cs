using System.Net;
using System.Net.Sockets;
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.Tests.Operations;

/// <summary>deploy/install.sh and deploy/systemd/bridge.service: installed into temp folders, the unit verified
/// by systemd-analyze, and the daemon run the way the unit runs it (user bridge, group mail, only its capabilities).</summary>
public class DeployTests
{
    [Fact]
    public async Task Install_sh_installs_a_unit_that_verifies_and_a_daemon_that_works_with_only_the_units_capabilities()
    {
        Peers.RequireRoot();
        var analyze = Peers.Require("systemd-analyze", "systemd");
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var target = new TempDir("bridge-install");
        var repository = Repository.Root;
        var install = await Proc.RunAsync("/bin/bash", [Path.Combine(repository, "deploy", "install.sh")], timeout: TimeSpan.FromMinutes(4),
            stdin: null, environment: new Dictionary<string, string> { ["PREFIX"] = target["lib"], ["ETC"] = target["etc"], ["UNIT_DIR"] = target["units"] });
        Assert.True(install.ExitCode == 0, install.Output);
        Assert.True(File.Exists(target["etc/appsettings.json"]));
        var verify = await Proc.RunAsync(analyze, ["verify", target["units/bridge.service"]]);
        Assert.True(verify.ExitCode == 0 && verify.Output.Trim().Length == 0, verify.Output);
        Assert.Equal(0, (await Proc.RunAsync("id", ["bridge"])).ExitCode);

        // A Debian-style spool: 2775 root:mail. The daemon as in the unit: User=bridge, Group=mail, ambient caps.
        using var spool = new TempDir("bridge-spool", TempDir.Mode("2775"));
        await Proc.RunAsync("chgrp", ["mail", spool.Path]);
        using var state = new TempDir("bridge-state", TempDir.Mode("700"));
        await Proc.RunAsync("chown", ["bridge", state.Path]);
        var port = FreePort.Privileged();
        const string caps = "+net_bind_service,+chown,+dac_override,+fowner,+setuid,+setgid";
        var run = Proc.RunAsync("setpriv", ["--reuid=bridge", "--regid=mail", "--init-groups", $"--inh-caps={caps}", $"--ambient-caps={caps}",
            "--", target["lib/mailbridge"], $"--Bridge:Listen:Port={port}", $"--Bridge:Spool:Directory={spool.Path}",
            $"--Bridge:Spool:JournalDirectory={state["journal"]}", $"--Bridge:LocalDomains:0={SpoolScenario.Domain}"],
            timeout: TimeSpan.FromSeconds(60), environment: new Dictionary<string, string> { ["HOME"] = state.Path });
        try
        {
            Assert.True(await DovecotServer.WaitForPortAsync(port), "the daemon did not listen on a privileged port with CAP_NET_BIND_SERVICE");
            for (var i = 0; i < 2; i++) // a new mailbox (create + chown), then an append to the user's 0600 file
            {
                var sent = await Swaks.SendAsync(port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}");
                Assert.True(sent.FinalReply.StartsWith("250 ", StringComparison.Ordinal), sent.Transcript);
            }
        }
        finally
        {
            await Proc.RunAsync("pkill", ["-TERM", "-u", "bridge", "-f", "bridge"]);
            await run;
        }
        Assert.Equal(0, Libc.Lstat(spool[TestAccounts.Alice], out var mailbox));
        Assert.Equal(alice.Uid, mailbox.Uid);
        Assert.Equal(Libc.GetGroupId("mail"), mailbox.Gid);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(spool[TestAccounts.Alice])).Count);
    }
}
