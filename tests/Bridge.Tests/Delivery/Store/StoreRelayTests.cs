using System.Diagnostics;
using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Store;

/// <summary>Legacy mode: swaks -> Bridge -> a real Dovecot over LMTP, read back over IMAP.</summary>
public class StoreRelayTests
{
    private const string Alice = "bridgetest1@" + SpoolScenario.Domain;

    [Fact]
    public async Task The_store_receives_the_original_bytes_plus_one_received_header_and_dkim_still_verifies()
    {
        await using var s = await LegacyScenario.StartAsync();
        using var dir = new TempDir();
        var (signed, publicKeyPem) = DkimTestMessage.Create(Alice);
        var data = dir["signed.eml"];
        await File.WriteAllBytesAsync(data, signed);

        var result = await Swaks.SendAsync(s.Port, Alice, dataFile: data);

        Assert.StartsWith("250 2.0.0 Ok: queued as ", result.FinalReply, StringComparison.Ordinal);
        var stored = Assert.Single(await s.InboxAsync(TestAccounts.Alice));
        // swaks ends the message with the CRLF before "."; the store has Dovecot's own trace headers on top.
        var original = (byte[])[.. signed, .. "\r\n"u8];
        Assert.True(stored.AsSpan().EndsWith(original), "the message bytes changed on the way to the store");
        var added = Encoding.UTF8.GetString(stored, 0, stored.Length - original.Length);
        Assert.Matches(@"Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby bridge\.localhost \(Bridge\) with ESMTP id [0-9A-F]{16}\r\n\tfor <bridgetest1@afp548\.test>; [^\r\n]+\r\n$", added);

        Assert.True(await DkimTestMessage.VerifyAsync(stored, publicKeyPem), "DKIM signature does not verify at the store");
        Assert.Contains(s.Bridge.Bridge.Logs.Lines, l => l.Contains($"relay=lmtp:[127.0.0.1]:{s.LmtpPort}", StringComparison.Ordinal)
                                                        && l.Contains("attempts=1, status=sent (250 2.0.0", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Lmtp")] // straight to Dovecot
    [InlineData("Smtp")] // through a Postfix store front
    public async Task Quoted_local_parts_reach_a_real_store_quoted(string protocol)
    {
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice, TestAccounts.Bob);
        await using var front = protocol == "Smtp" ? await PostfixServer.StartStoreFrontAsync(SpoolScenario.Domain, store.LmtpPort) : null;
        await using var s = await SpoolScenario.StartAsync("Bridge:Mode=Legacy", "Bridge:Legacy:Host=127.0.0.1",
            $"Bridge:Legacy:Port={front?.SmtpPort ?? store.LmtpPort}", $"Bridge:Legacy:Protocol={protocol}");

        var result = await Swaks.SendAsync(s.Port, $"\"bridgetest1+x y\"@{SpoolScenario.Domain}", from: "\"john doe\"@example.org",
            extra: ["--header", "Message-Id: <quoted@test>"]);

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        byte[]? stored = null;
        await Eventually.WaitAsync(async () => (stored = (await store.FetchInboxAsync(TestAccounts.Alice)).SingleOrDefault()) is not null);
        var text = Encoding.UTF8.GetString(stored!);
        Assert.Contains("Return-Path: <\"john doe\"@example.org>", text, StringComparison.Ordinal);
        Assert.Contains("<quoted@test>", text, StringComparison.Ordinal);
        Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains("from=<\"john doe\"@example.org>", StringComparison.Ordinal)
                                                && l.Contains("orig_to=<\"bridgetest1+x y\"@afp548.test>", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(true)] // one recipient and a store with CHUNKING: BDAT, the bytes as they are
    [InlineData(false)] // DATA: dot-stuffed by Bridge, unstuffed by the store
    public async Task Dot_lines_eight_bit_and_tags_reach_the_store_unchanged(bool chunking)
    {
        await using var s = await LegacyScenario.StartAsync(true, $"Bridge:Legacy:Chunking={chunking}");
        using var dir = new TempDir();
        var data = dir["m"];
        byte[] body = [.. ".leading dot\r\n..two dots\r\n.\r\nFrom line\r\ncaf"u8, 0xC3, 0xA9, (byte)' ', 0xE9];
        await File.WriteAllBytesAsync(data, [.. "Subject: dots\r\nMessage-Id: <dots@test>\r\n\r\n"u8, .. body]);

        var result = await Swaks.SendAsync(s.Port, "bridgetest1+folder@" + SpoolScenario.Domain, dataFile: data);

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        var stored = Assert.Single(await s.InboxAsync(TestAccounts.Alice));
        Assert.True(stored.AsSpan().EndsWith((byte[])[.. "\r\n\r\n"u8, .. body, .. "\r\n"u8]), Encoding.Latin1.GetString(stored));
    }

    [Theory]
    [InlineData(false, 6000)] // DATA
    [InlineData(true, 6000)] // BDAT in the same write as MAIL and RCPT (about 40 KB)
    [InlineData(true, 60000)] // BDAT after MAIL and RCPT were accepted (about 400 KB, over the 256 KiB pipelined limit)
    public async Task Dot_lines_at_every_offset_of_a_large_message_reach_the_store_unchanged(bool chunking, int lines)
    {
        // Thousands of dot lines of varying length: wherever the intake's buffers split the message (between CR
        // and LF, or LF and "."), some line starts there, so dot-stuffing across segment ends is exercised.
        await using var s = await LegacyScenario.StartAsync(true, $"Bridge:Legacy:Chunking={chunking}");
        using var dir = new TempDir();
        var body = new StringBuilder();
        for (var i = 0; i < lines; i++)
        {
            body.Append('.', 1 + (i % 3)).Append(new string('d', i % 11)).Append("\r\n");
        }
        body.Length -= 2; // swaks ends the data with CRLF "." CRLF itself
        var bodyBytes = Encoding.ASCII.GetBytes(body.ToString());
        await File.WriteAllBytesAsync(dir["m"], [.. "Subject: many dots\r\nMessage-Id: <many-dots@test>\r\n\r\n"u8, .. bodyBytes]);
        bodyBytes = [.. bodyBytes, .. "\r\n"u8];

        var result = await Swaks.SendAsync(s.Port, Alice, dataFile: dir["m"]);

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        var stored = Assert.Single(await s.InboxAsync(TestAccounts.Alice));
        var storedBody = stored.AsSpan(stored.AsSpan().IndexOf("\r\n\r\n"u8) + 4);
        var same = storedBody.CommonPrefixLength(bodyBytes);
        Assert.True(same == bodyBytes.Length && storedBody.Length == bodyBytes.Length,
            $"stored body of {storedBody.Length} bytes, sent {bodyBytes.Length}; first difference at byte {same}: " +
            Encoding.ASCII.GetString(storedBody[Math.Max(0, same - 30)..Math.Min(storedBody.Length, same + 30)]));
    }

    [Fact]
    public async Task Store_down_gives_451_4_4_1_within_the_budget_and_the_next_try_is_delivered_once()
    {
        await using var s = await LegacyScenario.StartAsync(storeUp: false, "Bridge:Retry:Budget=00:00:03", "Bridge:Retry:MaxAttempts=3");
        var clock = Stopwatch.StartNew();

        var refused = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith($"451 4.4.1 Mail store lmtp:[127.0.0.1]:{s.LmtpPort} unavailable after 3 attempt(s)", refused.FinalReply, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"answered after {clock.Elapsed}");

        await s.StartStoreAsync();
        var accepted = await Swaks.SendAsync(s.Port, Alice, extra: ["--header", "Message-Id: <later@test>"]);
        Assert.StartsWith("250 ", accepted.FinalReply, StringComparison.Ordinal);
        var stored = Assert.Single(await s.InboxAsync(TestAccounts.Alice));
        Assert.Contains("<later@test>", Encoding.UTF8.GetString(stored), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_store_that_comes_back_while_retries_run_gets_the_message_exactly_once()
    {
        await using var s = await LegacyScenario.StartAsync(storeUp: false,
            "Bridge:Retry:Budget=00:00:30", "Bridge:Retry:MaxAttempts=30", "Bridge:Retry:BaseDelay=00:00:00.300", "Bridge:Retry:MaxDelay=00:00:01");

        var sending = Swaks.SendAsync(s.Port, Alice, extra: ["--header", "Message-Id: <retried@test>"]);
        await Task.Delay(2000);
        Assert.False(sending.IsCompleted, "Bridge answered before the store came back");
        await s.StartStoreAsync();
        var result = await sending;

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        var stored = Assert.Single(await s.InboxAsync(TestAccounts.Alice));
        Assert.Contains("<retried@test>", Encoding.UTF8.GetString(stored), StringComparison.Ordinal);
        Assert.Contains(s.Bridge.Bridge.Logs.Lines, l => l.Contains("status=sent", StringComparison.Ordinal) && !l.Contains("attempts=1,", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(true, 1)] // BDAT in the same write as the refused RCPT: the store's 503 to it is read, then RSET
    [InlineData(true, 300)] // a message over the pipelined limit: its bytes never go out after the refused RCPT
    [InlineData(false, 1)] // DATA
    public async Task A_store_550_is_passed_back_as_is_not_retried_and_the_connection_stays_in_step(bool chunking, int kilobytes)
    {
        // bridgetest3 is a user Bridge knows (a system account) but the store does not.
        await TestAccounts.EnsureAsync(TestAccounts.Carol);
        await using var s = await LegacyScenario.StartAsync(true, $"Bridge:Legacy:Chunking={chunking}");
        using var dir = new TempDir();
        await File.WriteAllTextAsync(dir["m"], "Subject: big\r\nMessage-Id: <refused@test>\r\n\r\n" +
            string.Concat(Enumerable.Repeat(new string('x', 1022) + "\r\n", kilobytes)));

        var result = await Swaks.SendAsync(s.Port, $"{TestAccounts.Carol}@{SpoolScenario.Domain}", dataFile: dir["m"]);

        Assert.Matches(@"^550 5\.1\.1 .*User doesn't exist", result.FinalReply);
        Assert.Contains(s.Bridge.Bridge.Logs.Lines, l => l.Contains("attempts=1, status=bounced (550 5.1.1", StringComparison.Ordinal));
        Assert.DoesNotContain(s.Bridge.Bridge.Logs.Lines, l => l.Contains("attempt 2", StringComparison.Ordinal));

        // The next message goes over the same store connection: had a reply been left unread (or one too many
        // awaited), it would get the wrong answer or none.
        var next = await Swaks.SendAsync(s.Port, Alice, extra: ["--header", "Message-Id: <after-refusal@test>"]);
        Assert.StartsWith("250 ", next.FinalReply, StringComparison.Ordinal);
        var stored = Assert.Single(await s.InboxAsync(TestAccounts.Alice));
        Assert.Contains("<after-refusal@test>", Encoding.UTF8.GetString(stored), StringComparison.Ordinal);
        var connects = s.Store!.LmtpConnections;
        Assert.True(connects == 1, $"{connects} LMTP connections for 2 messages:\n{s.Store.Log}");
    }

    [Fact]
    public async Task An_open_breaker_answers_451_4_4_1_at_once()
    {
        await using var s = await LegacyScenario.StartAsync(storeUp: false,
            "Bridge:Retry:Budget=00:00:02", "Bridge:Retry:MaxAttempts=2", "Bridge:Retry:BreakAfterFailures=2", "Bridge:Retry:BreakDuration=00:01:00");
        await Swaks.SendAsync(s.Port, Alice);
        await Swaks.SendAsync(s.Port, Alice);
        await s.StartStoreAsync(); // even with the store back, the open breaker answers without trying

        var clock = Stopwatch.StartNew();
        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("451 4.4.1 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Contains("circuit breaker is open", result.FinalReply, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1.5), $"answered after {clock.Elapsed}");
        Assert.Empty(await s.InboxAsync(TestAccounts.Alice));
    }

    [Fact]
    public async Task With_fallback_to_spool_a_dead_store_means_the_message_is_written_to_the_spool()
    {
        await using var s = await LegacyScenario.StartAsync(storeUp: false,
            "Bridge:Retry:Budget=00:00:02", "Bridge:Retry:MaxAttempts=2", "Bridge:Legacy:FallbackToSpool=true");

        var result = await Swaks.SendAsync(s.Port, Alice, extra: ["--header", "Message-Id: <fallback@test>"]);

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        var message = Assert.Single(await MboxReaders.PythonMailboxAsync(s.Bridge.AliceMailbox));
        Assert.Equal("<fallback@test>", message.MessageId);
        Assert.Contains(s.Bridge.Bridge.Logs.Lines, l => l.Contains("fallback spool:", StringComparison.Ordinal) && l.Contains("status=sent", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_users_own_mode_overrides_the_global_mode()
    {
        await using var s = await LegacyScenario.StartAsync(storeUp: true, "Bridge:Mode=Spool", "Bridge:Users:1:Mode=Legacy");

        var result = await Swaks.SendAsync(s.Port, $"{Alice},{TestAccounts.Bob}@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <split@test>"]);

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal("<split@test>", Assert.Single(await MboxReaders.PythonMailboxAsync(s.Bridge.AliceMailbox)).MessageId);
        Assert.Contains("<split@test>", Encoding.UTF8.GetString(Assert.Single(await s.InboxAsync(TestAccounts.Bob))), StringComparison.Ordinal);
        Assert.False(File.Exists(s.Bridge.BobMailbox));
        Assert.Empty(await s.InboxAsync(TestAccounts.Alice));
    }

    [Fact]
    public async Task Connections_to_the_store_are_reused_across_messages()
    {
        await using var s = await LegacyScenario.StartAsync();
        for (var i = 0; i < 5; i++)
        {
            Assert.StartsWith("250 ", (await Swaks.SendAsync(s.Port, Alice)).FinalReply, StringComparison.Ordinal);
        }

        Assert.Equal(5, (await s.InboxAsync(TestAccounts.Alice)).Count);
        var connects = s.Store!.LmtpConnections;
        Assert.True(connects is >= 1 and < 5, $"{connects} LMTP connections for 5 messages:\n{s.Store.Log}");
    }
}
