using Bridge.Delivery.Spool;
using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Spool;

/// <summary>Concurrent deliveries to one mailbox share one lock, journal entry and fsync, and each is still
/// answered on its own.</summary>
public class GroupCommitTests
{
    private const int Senders = 12;

    /// <summary>One whole SMTP transaction; returns the reply to the end of DATA.</summary>
    private static async Task<string> SendAsync(int port, string to, string messageId)
    {
        var (smtp, _) = await RawSmtp.ConnectAsync(port);
        using (smtp)
        {
            await smtp.CommandAsync("EHLO client.test");
            await smtp.CommandAsync("MAIL FROM:<sender@example.org>");
            await smtp.CommandAsync($"RCPT TO:<{to}>");
            await smtp.CommandAsync("DATA");
            await smtp.SendAsync($"Message-Id: {messageId}\r\nSubject: group commit\r\n\r\n{new string('x', 700)}");
            return await smtp.CommandAsync(".");
        }
    }

    /// <summary>Sends <see cref="Senders"/> messages at once while another program holds the mailbox's fcntl lock,
    /// so that they queue up behind the first one; returns each Message-Id with its reply.</summary>
    private static async Task<(string MessageId, string Reply)[]> SendWhileLockedAsync(SpoolScenario s)
    {
        using (await LockHolder.FcntlAsync(s.AliceMailbox, 2))
        {
            var sends = Enumerable.Range(0, Senders)
                .Select(async i => ($"<group-{i}@test>", await SendAsync(s.Port, $"alice@{SpoolScenario.Domain}", $"<group-{i}@test>")))
                .ToArray();
            return await Task.WhenAll(sends);
        }
    }

    [Fact]
    public async Task Deliveries_that_queue_for_one_mailbox_are_written_in_few_commits_each_once_and_each_answered_250()
    {
        await using var s = await SpoolScenario.StartAsync();
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);

        var replies = await SendWhileLockedAsync(s);

        Assert.All(replies, r => Assert.StartsWith("250 2.0.0 ", r.Reply, StringComparison.Ordinal));
        var messages = await MboxReaders.PythonMailboxAsync(s.AliceMailbox);
        Assert.Equal(Senders + 1, messages.Count);
        Assert.Equal(replies.Select(r => r.MessageId).Order(), messages.Skip(1).Select(m => m.MessageId).Order());
        Assert.Equal(Senders, (await MboxReaders.FormailMessageIdsAsync(s.AliceMailbox)).Count(id => id.StartsWith("<group-", StringComparison.Ordinal)));
        // They gather behind the lock (the first possibly alone): far fewer commits than messages.
        var commits = s.Bridge.Service<SpoolDeliveryAgent>().GroupCommits;
        Assert.InRange(commits, 1, Senders / 2);
        Assert.Empty(Directory.Exists(s.Root["journal"]) ? Directory.GetFiles(s.Root["journal"]) : []);
    }

    [Fact]
    public async Task In_one_batch_the_records_over_MaxMailboxBytes_are_refused_alone_and_the_others_delivered()
    {
        var limit = SpoolScenario.SampleMbox.Length + 5000; // room for a few of the ~1.2 KB records, not for all
        await using var s = await SpoolScenario.StartAsync($"Bridge:Spool:MaxMailboxBytes={limit}");
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);

        var replies = await SendWhileLockedAsync(s);

        var delivered = replies.Where(r => r.Reply.StartsWith("250 2.0.0 ", StringComparison.Ordinal)).Select(r => r.MessageId).ToList();
        var refused = replies.Where(r => r.Reply.StartsWith("552 5.2.2 ", StringComparison.Ordinal)).ToList();
        Assert.Equal(Senders, delivered.Count + refused.Count);
        Assert.NotEmpty(delivered);
        Assert.NotEmpty(refused);
        Assert.True(new FileInfo(s.AliceMailbox).Length <= limit);
        var messages = await MboxReaders.PythonMailboxAsync(s.AliceMailbox);
        Assert.Equal(delivered.Order(), messages.Skip(1).Select(m => m.MessageId).Order());
    }
}
