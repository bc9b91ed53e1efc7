using Bridge.Tests.Support;

namespace Bridge.Tests.Hosting;

/// <summary>SIGTERM (systemd stop): no new work, running deliveries finish, exit code 0.</summary>
public class GracefulStopTests
{
    private const int Sigterm = 15;

    [Fact]
    public async Task Sigterm_finishes_the_message_being_delivered_refuses_new_transactions_and_exits_0()
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var port = FreePort.Next();
        await File.WriteAllTextAsync(dir["appsettings.json"], $$"""
            { "Bridge": { "Listen": { "Port": {{port}} }, "LocalDomains": [ "{{SpoolScenario.Domain}}" ], "Spool": { "Directory": "{{spool.Path}}" } } }
            """);
        var mailbox = spool[TestAccounts.Alice];
        SpoolScenario.CreateMailbox(mailbox, SpoolScenario.SampleMbox, alice.Uid, alice.Gid);
        await using var bridge = await BridgeProcess.StartAsync(dir, null);
        var to = $"{TestAccounts.Alice}@{SpoolScenario.Domain}";

        var (idle, _) = await RawSmtp.ConnectAsync(port);
        Assert.StartsWith("250", await idle.CommandAsync("EHLO client.test"), StringComparison.Ordinal);
        using var holder = await LockHolder.FcntlAsync(mailbox, 4); // the delivery below waits for this lock
        var delivering = Swaks.SendAsync(port, to, extra: ["--header", "Message-Id: <in-flight@test>"]);
        await Task.Delay(1000);

        bridge.Signal(Sigterm);
        await bridge.WaitForLineAsync("Stopping:", TimeSpan.FromSeconds(10));
        Assert.Equal("421 4.3.2 Service shutting down, try again later", await idle.CommandAsync("MAIL FROM:<late@example.org>"));
        var late = await Swaks.SendAsync(port, to, extra: ["--header", "Message-Id: <late@test>"]);
        // Connection refused (swaks exit 2, "error connecting"): the MTA keeps the message queued.
        Assert.Equal(2, late.ExitCode);
        Assert.Contains("Connection refused", late.Transcript, StringComparison.Ordinal);

        var result = await delivering;
        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal("<in-flight@test>", Assert.Single(await MboxReaders.PythonMailboxAsync(mailbox), m => m.MessageId == "<in-flight@test>").MessageId);
        Assert.Equal(0, await bridge.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        Assert.DoesNotContain(await MboxReaders.PythonMailboxAsync(mailbox), m => m.MessageId == "<late@test>");
        idle.Dispose();
    }
}
