using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Store;

/// <summary>Per-recipient LMTP outcomes and the SMTP protocol through a real Postfix store front.</summary>
public class StoreOutcomeTests
{
    private const string Alice = "bridgetest1@" + SpoolScenario.Domain;
    private const string Bob = "bridgetest2@" + SpoolScenario.Domain;

    [Fact]
    public async Task A_recipient_the_store_defers_is_retried_alone_and_every_copy_arrives_once()
    {
        await using var s = await LegacyScenario.StartAsync(storeUp: true,
            "Bridge:Retry:Budget=00:00:30", "Bridge:Retry:MaxAttempts=30", "Bridge:Retry:BaseDelay=00:00:00.300", "Bridge:Retry:MaxDelay=00:00:01");
        var bobHome = s.Store!.HomeOf(TestAccounts.Bob);
        await Proc.RunAsync("chown", ["root:root", bobHome]); // Dovecot (as bob) cannot create his Maildir: LMTP 4xx for bob only

        var sending = Swaks.SendAsync(s.Port, $"{Alice},{Bob}", extra: ["--header", "Message-Id: <mixed@test>"]);
        await Eventually.WaitAsync(() => s.Bridge.Bridge.Logs.Lines.Any(l => l.Contains("attempt", StringComparison.Ordinal))
                                 || s.Store.Log.Contains("Internal error", StringComparison.OrdinalIgnoreCase)
                                 || s.Store.Log.Contains("Permission denied", StringComparison.Ordinal));
        await Task.Delay(1500);
        Assert.False(sending.IsCompleted, "Bridge answered while the store still deferred bob");
        var ids = await Proc.RunAsync("id", ["-u", TestAccounts.Bob]);
        await Proc.RunAsync("chown", [ids.Stdout.Trim(), bobHome]);
        var result = await sending;

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Single(await s.InboxAsync(TestAccounts.Alice));
        Assert.Contains("<mixed@test>", Encoding.UTF8.GetString(Assert.Single(await s.InboxAsync(TestAccounts.Bob))), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_recipient_refused_for_good_next_to_a_delivered_one_defers_the_message_when_no_dsn_can_be_sent()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Carol); // known to Bridge, unknown to the store
        await using var s = await LegacyScenario.StartAsync(storeUp: true, $"Bridge:Bounces:Relay=127.0.0.1:{FreePort.Next()}");

        var result = await Swaks.SendAsync(s.Port, $"{Alice},{TestAccounts.Carol}@{SpoolScenario.Domain}");

        Assert.StartsWith($"451 4.5.0 <{TestAccounts.Carol}@{SpoolScenario.Domain}> failed permanently (550 5.1.1", result.FinalReply, StringComparison.Ordinal);
        Assert.Single(await s.InboxAsync(TestAccounts.Alice)); // delivered: a retry by the MTA duplicates it (duplicates over loss)
    }

    [Fact]
    public async Task A_recipient_refused_for_good_next_to_a_delivered_one_gets_250_and_the_sender_a_dsn()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Carol);
        // The DSN goes to the upstream Postfix (Bounces:Relay), which relays it back through Bridge to the sender's store mailbox.
        var postfixPort = FreePort.Next();
        await using var s = await LegacyScenario.StartAsync(storeUp: true, $"Bridge:Bounces:Relay=127.0.0.1:{postfixPort}");
        await using var postfix = await PostfixServer.StartAsync(s.Port, postfixPort);

        var result = await Swaks.SendAsync(s.Port, $"{Alice},{TestAccounts.Carol}@{SpoolScenario.Domain}", from: Bob,
            extra: ["--header", "Message-Id: <partly@test>", "--header", "Subject: partly"]);

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Single(await s.InboxAsync(TestAccounts.Alice));
        byte[]? dsnBytes = null;
        await Eventually.WaitAsync(async () => (dsnBytes = (await s.InboxAsync(TestAccounts.Bob)).SingleOrDefault()) is not null);
        Assert.NotNull(dsnBytes);
        var dsn = MimeKit.MimeMessage.Load(new MemoryStream(dsnBytes));
        var report = Assert.IsType<MimeKit.MultipartReport>(dsn.Body);
        Assert.Equal("delivery-status", report.ReportType);
        var status = Assert.IsType<MimeKit.MessageDeliveryStatus>(report[1]);
        var recipient = Assert.Single(status.StatusGroups.Skip(1), g => g.Count > 0);
        Assert.Equal($"rfc822; {TestAccounts.Carol}@{SpoolScenario.Domain}", recipient["Final-Recipient"]);
        Assert.Equal("failed", recipient["Action"]);
        Assert.Equal("5.1.1", recipient["Status"]);
        Assert.Contains("<partly@test>", report[2].ToString(), StringComparison.Ordinal);
        Assert.Equal("<>", dsn.Headers["Return-Path"]?.Trim());
    }

    [Fact]
    public async Task A_message_from_the_null_sender_never_gets_a_dsn()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Carol);
        await using var s = await LegacyScenario.StartAsync(storeUp: true, $"Bridge:Bounces:Relay=127.0.0.1:{FreePort.Next()}");

        var result = await Swaks.SendAsync(s.Port, $"{Alice},{TestAccounts.Carol}@{SpoolScenario.Domain}", from: "");

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Contains(s.Bridge.Bridge.Logs.Lines, l => l.Contains("never a DSN for a DSN", StringComparison.Ordinal));
        Assert.Single(await s.InboxAsync(TestAccounts.Alice));
    }


    [Theory]
    [InlineData(true, "", "bdat=1")]
    [InlineData(false, "", "data=1")]
    [InlineData(true, "smtpd_discard_ehlo_keywords=chunking", "data=1")] // a store without CHUNKING gets DATA
    public async Task Protocol_smtp_relays_through_a_real_postfix_store_with_the_bytes_unchanged(bool chunking, string postfixSetting, string postfixCounted)
    {
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice, TestAccounts.Bob);
        await using var front = await PostfixServer.StartStoreFrontAsync(SpoolScenario.Domain, store.LmtpPort, 0,
            postfixSetting.Length == 0 ? [] : [postfixSetting]);
        var s = await SpoolScenario.StartAsync("Bridge:Mode=Legacy", "Bridge:Legacy:Host=127.0.0.1",
            $"Bridge:Legacy:Port={front.SmtpPort}", "Bridge:Legacy:Protocol=Smtp", $"Bridge:Legacy:Chunking={chunking}");
        await using var stopBridge = s;
        using var dir = new TempDir();
        var data = dir["m"];
        byte[] message = [.. "From: sender@example.org\r\nDate: Tue, 24 Nov 2026 12:00:00 +0000\r\nSubject: via smtp\r\nMessage-Id: <smtp@test>\r\n\r\n.dot\r\nFrom x\r\n8bit "u8, 0xC3, 0xA9];
        await File.WriteAllBytesAsync(data, message);

        var result = await Swaks.SendAsync(s.Port, Alice, dataFile: data);

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Contains($"relay=smtp:[127.0.0.1]:{front.SmtpPort}", string.Join('\n', s.Bridge.Logs.Lines), StringComparison.Ordinal);
        byte[]? stored = null;
        await Eventually.WaitAsync(async () => (stored = (await store.FetchInboxAsync(TestAccounts.Alice)).SingleOrDefault()) is not null);
        Assert.NotNull(stored);
        Assert.True(stored.AsSpan().EndsWith((byte[])[.. message, .. "\r\n"u8]), Encoding.Latin1.GetString(stored));
        Assert.Contains("by bridge.localhost (Bridge) with ESMTP", Encoding.UTF8.GetString(stored), StringComparison.Ordinal);

        // Postfix counts the commands of a session when it ends (Bridge says QUIT to its pooled connections as it stops).
        await s.DisposeAsync();
        string? ended = null;
        await Eventually.WaitAsync(() => Task.FromResult((ended = front.Log.Split('\n').FirstOrDefault(l =>
            l.Contains("disconnect from", StringComparison.Ordinal) && l.Contains(" mail=1 ", StringComparison.Ordinal))) is not null));
        Assert.True(ended?.Contains($" {postfixCounted} ", StringComparison.Ordinal) == true, front.Log);
    }
}
