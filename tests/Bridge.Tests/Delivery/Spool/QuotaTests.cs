using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Spool;

/// <summary>Quota known before DATA (Bridge:Spool:MaxMailboxBytes at RCPT, with the announced SIZE=) and
/// Bridge:Spool:QuotaExceeded, over SMTP and LMTP, with the recheck after DATA.</summary>
public class QuotaTests
{
    private const string Domain = SpoolScenario.Domain;
    private static readonly byte[] Filled = Encoding.ASCII.GetBytes("From old@example.org  Mon Nov 23 10:00:00 2026\nSubject: old\n\n" + new string('x', 2900) + "\n\n");

    [Theory]
    [InlineData("Bounce", "552 5.2.2 Mailbox bridgetest2 is full")]
    [InlineData("Defer", "452 4.2.2 Mailbox bridgetest2 is full, try again later")]
    public async Task A_mailbox_over_its_limit_is_refused_at_rcpt_and_the_others_still_get_the_message(string policy, string refusal)
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:Spool:MaxMailboxBytes=2000", $"Bridge:Spool:QuotaExceeded={policy}");
        SpoolScenario.CreateMailbox(s.BobMailbox, Filled, s.BobIds.Uid, s.BobIds.Gid);
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        using (session)
        {
            await session.CommandAsync("EHLO client.test");
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync("MAIL FROM:<a@example.org>"));
            Assert.Equal(refusal, await session.CommandAsync($"RCPT TO:<{TestAccounts.Bob}@{Domain}>"));
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync($"RCPT TO:<{TestAccounts.Alice}@{Domain}>"));
            Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
            await session.SendAsync("Subject: q\r\n\r\nhello\r\n.");
            Assert.StartsWith("250 2.0.0 ", await session.ReadReplyAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(Filled, await File.ReadAllBytesAsync(s.BobMailbox));
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
    }

    [Fact]
    public async Task The_announced_size_is_counted_at_rcpt_and_the_real_size_after_data()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:Spool:MaxMailboxBytes=4000");
        SpoolScenario.CreateMailbox(s.BobMailbox, Filled, s.BobIds.Uid, s.BobIds.Gid); // about 3 KB: room for 1 KB more
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        using (session)
        {
            await session.CommandAsync("EHLO client.test");
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync("MAIL FROM:<a@example.org> SIZE=5000"));
            Assert.Equal($"552 5.2.2 Mailbox {TestAccounts.Bob} is full", await session.CommandAsync($"RCPT TO:<{TestAccounts.Bob}@{Domain}>"));
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync("RSET"));

            // Announced small, sent large: the recheck under the locks after DATA refuses it, nothing is written.
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync("MAIL FROM:<a@example.org> SIZE=100"));
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync($"RCPT TO:<{TestAccounts.Bob}@{Domain}>"));
            Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
            await session.SendAsync("Subject: big\r\n\r\n" + new string('y', 3000) + "\r\n.");
            Assert.Equal($"552 5.2.2 Mailbox {TestAccounts.Bob} is full", await session.ReadReplyAsync());

            // Small enough: delivered.
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync("MAIL FROM:<a@example.org> SIZE=100"));
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync($"RCPT TO:<{TestAccounts.Bob}@{Domain}>"));
            Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
            await session.SendAsync("Subject: small\r\n\r\nhi\r\n.");
            Assert.StartsWith("250 2.0.0 ", await session.ReadReplyAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(s.BobMailbox)).Count);
    }

    [Fact]
    public async Task With_defer_a_mailbox_that_fills_up_after_rcpt_gets_452_after_data_over_lmtp_too()
    {
        using var sockets = new TempDir("bridge-lmtp");
        await using var s = await SpoolScenario.StartAsync("Bridge:Spool:MaxMailboxBytes=4000", "Bridge:Spool:QuotaExceeded=Defer",
            $"Bridge:Lmtp:Socket={sockets["lmtp"]}");
        SpoolScenario.CreateMailbox(s.BobMailbox, Filled, s.BobIds.Uid, s.BobIds.Gid);
        var (session, _) = await RawSmtp.ConnectUnixAsync(sockets["lmtp"]);
        using (session)
        {
            await session.CommandAsync("LHLO client.test");
            await session.CommandAsync("MAIL FROM:<a@example.org>");
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync($"RCPT TO:<{TestAccounts.Bob}@{Domain}>"));
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync($"RCPT TO:<{TestAccounts.Alice}@{Domain}>"));
            Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
            await session.SendAsync("Subject: big\r\n\r\n" + new string('y', 3000) + "\r\n.");
            Assert.Equal($"452 4.2.2 Mailbox {TestAccounts.Bob} is full, try again later", await session.ReadReplyAsync());
            Assert.StartsWith("250 2.0.0 ", await session.ReadReplyAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(Filled, await File.ReadAllBytesAsync(s.BobMailbox));
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
    }
}
