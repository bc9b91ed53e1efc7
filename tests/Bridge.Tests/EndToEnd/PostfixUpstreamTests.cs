using Bridge.Tests.Support;

namespace Bridge.Tests.EndToEnd;

/// <summary>A real Postfix with relayhost = [127.0.0.1]:&lt;bridge&gt; as the upstream MTA.</summary>
public class PostfixUpstreamTests
{
    [Fact]
    public async Task Mail_sent_into_postfix_lands_in_the_users_mbox()
    {
        await using var s = await SpoolScenario.StartAsync();
        await using var postfix = await PostfixServer.StartAsync(s.Port);

        for (var i = 0; i < 5; i++)
        {
            var to = i % 2 == 0 ? $"alice+{i}@{SpoolScenario.Domain}" : $"bob@{SpoolScenario.Domain}";
            var sent = await Swaks.SendAsync(postfix.SmtpPort, to, extra: ["--header", $"Message-Id: <via-postfix-{i}@test>"]);
            Assert.StartsWith("250 ", sent.FinalReply, StringComparison.Ordinal);
        }

        await Eventually.WaitAsync(async () => await postfix.QueuedAsync() == 0 && File.Exists(s.BobMailbox)
                                         && (await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).Count == 3, 30, () => postfix.Log);
        var alice = await MboxReaders.PythonMailboxAsync(s.AliceMailbox);
        var bob = await MboxReaders.PythonMailboxAsync(s.BobMailbox);
        Assert.Equal(["<via-postfix-0@test>", "<via-postfix-2@test>", "<via-postfix-4@test>"], alice.Select(m => m.MessageId ?? "").Order());
        Assert.Equal(["<via-postfix-1@test>", "<via-postfix-3@test>"], bob.Select(m => m.MessageId ?? "").Order());
        Assert.Contains($"relay=127.0.0.1[127.0.0.1]:{s.Port}", postfix.Log, StringComparison.Ordinal);
        Assert.Contains("status=sent (250 2.0.0 Ok: queued as", postfix.Log, StringComparison.Ordinal);
        Assert.DoesNotContain("loops back to myself", postfix.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_the_deploy_snippet_postfix_sends_each_recipient_in_its_own_transaction()
    {
        await using var s = await SpoolScenario.StartAsync();
        await using var postfix = await PostfixServer.StartAsync(s.Port);

        await Swaks.SendAsync(postfix.SmtpPort, $"alice@{SpoolScenario.Domain},bob@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <two@test>"]);

        await Eventually.WaitAsync(async () => await postfix.QueuedAsync() == 0 && File.Exists(s.AliceMailbox) && File.Exists(s.BobMailbox), 30, () => postfix.Log);
        var sent = s.Bridge.Logs.Lines.Where(l => l.Contains("status=sent", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, sent.Count);
        Assert.NotEqual(sent[0].Split(':')[1], sent[1].Split(':')[1]); // two queue ids: two transactions
    }

    [Fact]
    public async Task Postfix_keeps_a_deferred_message_queued_and_delivers_it_once_when_the_mailbox_is_fixed()
    {
        await using var s = await SpoolScenario.StartAsync();
        await using var postfix = await PostfixServer.StartAsync(s.Port);
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.BobIds.Uid, s.BobIds.Gid); // wrong owner

        await Swaks.SendAsync(postfix.SmtpPort, $"alice@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <deferred@test>"]);
        await Eventually.WaitAsync(() => Task.FromResult(postfix.Log.Contains("status=deferred", StringComparison.Ordinal)), 30, () => postfix.Log);
        Assert.Contains("450 4.2.0 Mailbox bridgetest1 is unusable", postfix.Log, StringComparison.Ordinal);
        Assert.Equal(SpoolScenario.SampleMbox, await File.ReadAllBytesAsync(s.AliceMailbox));

        File.Delete(s.AliceMailbox);
        await postfix.FlushAsync();
        await Eventually.WaitAsync(async () => await postfix.QueuedAsync() == 0 && File.Exists(s.AliceMailbox), 30, () => postfix.Log);
        var message = Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        Assert.Equal("<deferred@test>", message.MessageId);
    }
}
