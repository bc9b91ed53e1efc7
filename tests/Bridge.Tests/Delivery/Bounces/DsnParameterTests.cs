using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Bounces;

/// <summary>RFC 3461 DSN parameters: from a real Postfix upstream (which sends NOTIFY, ORCPT and ENVID once Bridge offers
/// DSN) into the spool and Bridge's delivery notice; NOTIFY=NEVER; and in Legacy mode passed on to a Postfix store front.</summary>
public partial class DsnParameterTests
{
    [System.Text.RegularExpressions.GeneratedRegex(@"sender delivery status notification: (\w+)")]
    private static partial System.Text.RegularExpressions.Regex NoticeId();

    private const string Domain = SpoolScenario.Domain;

    private static async Task<string> SendAsync(RawSmtp session, string mail, IEnumerable<string> rcpts, string message)
    {
        Assert.StartsWith("250", await session.CommandAsync("EHLO client.test"), StringComparison.Ordinal);
        Assert.StartsWith("250 ", await session.CommandAsync(mail), StringComparison.Ordinal);
        foreach (var rcpt in rcpts)
        {
            Assert.StartsWith("250 ", await session.CommandAsync(rcpt), StringComparison.Ordinal);
        }
        Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
        await session.SendAsync(message + ".");
        return await session.ReadReplyAsync();
    }

    [Fact]
    public async Task Postfix_relays_notify_orcpt_and_envid_and_bridge_writes_the_original_recipient_and_a_delivery_notice()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Carol);
        var bouncePort = FreePort.Next();
        await using var s = await SpoolScenario.StartAsync($"Bridge:Bounces:Relay=127.0.0.1:{bouncePort}");
        // Postfix rewrites info@ to alice (a virtual alias) and tells Bridge the original recipient in ORCPT; carol's
        // RCPT asks NOTIFY=SUCCESS, which Postfix hands on to Bridge, the final delivery agent.
        await using var postfix = await PostfixServer.StartAsync(s.Port, bouncePort,
            $"virtual_alias_maps=inline:{{ info@{Domain}={TestAccounts.Alice}@{Domain} }}");
        var (session, _) = await RawSmtp.ConnectAsync(postfix.SmtpPort);
        using (session)
        {
            var reply = await SendAsync(session, $"MAIL FROM:<{TestAccounts.Bob}@{Domain}> ENVID=env-42",
                [$"RCPT TO:<info@{Domain}>", $"RCPT TO:<{TestAccounts.Carol}@{Domain}> NOTIFY=SUCCESS,FAILURE"],
                "Message-Id: <dsn-success@test>\r\nSubject: dsn\r\n\r\nhello\r\n");
            Assert.StartsWith("250 ", reply, StringComparison.Ordinal);
        }

        await Eventually.WaitAsync(async () => File.Exists(s.BobMailbox) && (await MboxReaders.PythonMailboxAsync(s.BobMailbox)).Count == 1, 60,
            () => postfix.Log);
        var delivered = Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        Assert.Equal(($"info@{Domain}", $"{TestAccounts.Alice}@{Domain}"), (delivered.OriginalTo, delivered.DeliveredTo));
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.Spool[TestAccounts.Carol]));
        var notice = Assert.Single(await MboxReaders.PythonMailboxAsync(s.BobMailbox));
        Assert.StartsWith("MAILER-DAEMON", notice.FromLine, StringComparison.Ordinal);
        Assert.True(notice.BodyText.Contains("Reporting-MTA: dns; bridge.localhost", StringComparison.Ordinal), notice.BodyText); // Bridge's, not Postfix's
        Assert.Contains("Action: delivered", notice.BodyText, StringComparison.Ordinal);
        Assert.Contains("Original-Envelope-Id: env-42", notice.BodyText, StringComparison.Ordinal);
        Assert.Contains($"Original-Recipient: rfc822; {TestAccounts.Carol}@{Domain}", notice.BodyText, StringComparison.Ordinal);
        Assert.DoesNotContain("Action: relayed", notice.BodyText, StringComparison.Ordinal); // Postfix left the notice to Bridge
    }

    [Fact]
    public async Task Notify_never_sends_no_notice_for_a_recipient_refused_for_good_and_without_it_one_is_sent()
    {
        using var sink = await SmtpSink.StartAsync();
        await using var s = await SpoolScenario.StartAsync("Bridge:Spool:MaxMailboxBytes=4000", $"Bridge:Bounces:Relay=127.0.0.1:{sink.Port}");
        byte[] almostFull = [.. SpoolScenario.SampleMbox, .. Enumerable.Repeat((byte)'x', 3000), .. "\n\n"u8];
        SpoolScenario.CreateMailbox(s.AliceMailbox, almostFull, s.AliceIds.Uid, s.AliceIds.Gid);
        var message = "Subject: big\r\n\r\n" + new string('y', 2000) + "\r\n";

        foreach (var notify in new[] { " NOTIFY=NEVER", "" })
        {
            File.Delete(s.BobMailbox); // room for the message in bob's mailbox each time
            var (session, _) = await RawSmtp.ConnectAsync(s.Port);
            using (session)
            {
                var reply = await SendAsync(session, "MAIL FROM:<sender@example.org>",
                    [$"RCPT TO:<{TestAccounts.Alice}@{Domain}>{notify}", $"RCPT TO:<{TestAccounts.Bob}@{Domain}>"], message);
                Assert.StartsWith("250 2.0.0 ", reply, StringComparison.Ordinal); // bob has it; alice's failure is the notice's (or nobody's)
            }
            await Task.Delay(1000);
            Assert.Equal(notify.Length == 0 ? 1 : 0, sink.Received);
            Assert.Single(await MboxReaders.PythonMailboxAsync(s.BobMailbox));
        }
        Assert.Equal(almostFull, await File.ReadAllBytesAsync(s.AliceMailbox));
    }

    [Fact]
    public async Task In_legacy_mode_the_parameters_reach_a_store_that_offers_dsn()
    {
        var lmtpPort = FreePort.Next();
        await using var store = await DovecotServer.StartStoreAsync(lmtpPort, TestAccounts.Alice);
        await using var front = await PostfixServer.StartStoreFrontAsync(Domain, store.LmtpPort);
        await using var s = await SpoolScenario.StartAsync("Bridge:Mode=Legacy", "Bridge:Legacy:Host=127.0.0.1",
            $"Bridge:Legacy:Port={front.SmtpPort}", "Bridge:Legacy:Protocol=Smtp");
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        using (session)
        {
            var reply = await SendAsync(session, "MAIL FROM:<sender@example.org> RET=HDRS ENVID=legacy-7",
                [$"RCPT TO:<{TestAccounts.Alice}@{Domain}> NOTIFY=SUCCESS ORCPT=rfc822;boss@{Domain}"],
                "Message-Id: <dsn-legacy@test>\r\nSubject: dsn\r\n\r\nhello\r\n");
            Assert.StartsWith("250 2.0.0 ", reply, StringComparison.Ordinal);
        }

        // NOTIFY=SUCCESS reached the store's MTA: it made its own delivery notice, whose report carries ENVID and ORCPT.
        string? notice = null;
        await Eventually.WaitAsync(() => (notice = NoticeId().Match(front.Log) is { Success: true } m ? m.Groups[1].Value : null) is not null, 60,
            () => front.Log);
        var postcat = await Proc.RunAsync("postcat", ["-c", front.ConfigDirectory, "-bq", notice!]);
        Assert.True(postcat.Stdout.Contains($"Original-Recipient: rfc822;boss@{Domain}", StringComparison.Ordinal), postcat.Output);
        Assert.Contains("Original-Envelope-Id: legacy-7", postcat.Stdout, StringComparison.Ordinal);
        Assert.Matches("Action: (delivered|relayed)", postcat.Stdout); // relayed: Dovecot LMTP behind it offers no DSN
        Assert.Contains("<dsn-legacy@test>", Encoding.UTF8.GetString(Assert.Single(await store.FetchInboxAsync(TestAccounts.Alice))),
            StringComparison.Ordinal);
    }

    [Fact]
    public async Task In_legacy_mode_the_parameters_are_dropped_quietly_for_a_store_without_dsn()
    {
        await using var legacy = await LegacyScenario.StartAsync(); // Dovecot LMTP: no DSN in its LHLO reply
        var (session, _) = await RawSmtp.ConnectAsync(legacy.Port);
        using (session)
        {
            var reply = await SendAsync(session, "MAIL FROM:<sender@example.org> RET=FULL ENVID=quiet-1",
                [$"RCPT TO:<{TestAccounts.Alice}@{Domain}> NOTIFY=SUCCESS ORCPT=rfc822;boss@{Domain}"],
                "Message-Id: <dsn-quiet@test>\r\nSubject: dsn\r\n\r\nhello\r\n");
            Assert.StartsWith("250 2.0.0 ", reply, StringComparison.Ordinal);
        }
        Assert.Contains("<dsn-quiet@test>", Encoding.UTF8.GetString(Assert.Single(await legacy.InboxAsync(TestAccounts.Alice))), StringComparison.Ordinal);
    }
}
