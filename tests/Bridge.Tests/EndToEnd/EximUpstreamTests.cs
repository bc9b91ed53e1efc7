using Bridge.Tests.Support;

namespace Bridge.Tests.EndToEnd;

/// <summary>A real Exim configured with deploy/exim/ as the upstream MTA.</summary>
public class EximUpstreamTests
{
    [Fact]
    public async Task Mail_sent_through_exim_with_the_deploy_router_lands_in_the_mbox()
    {
        await using var s = await SpoolScenario.StartAsync();
        using var exim = await EximServer.CreateAsync(s.Port);

        var result = await exim.SendAsync("sender@example.org", $"alice@{SpoolScenario.Domain}",
            "Subject: via exim\nMessage-Id: <exim@test>\n\nhello from exim\n");

        Assert.True(result.ExitCode == 0, result.Output + exim.MainLog);
        Assert.Contains("R=bridge T=bridge_smtp", exim.MainLog, StringComparison.Ordinal);
        Assert.Contains("C=\"250 2.0.0 Ok: queued as", exim.MainLog, StringComparison.Ordinal);
        var message = Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        Assert.Equal("<exim@test>", message.MessageId);
        Assert.Contains("from exim.test", await File.ReadAllTextAsync(s.AliceMailbox), StringComparison.Ordinal);
    }
}
