using System.Text;
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Spool;

/// <summary>swaks -> Bridge -> /var/mail-style mbox, read back by python's mailbox module and formail.</summary>
public class SpoolDeliveryTests
{
    private const string Domain = SpoolScenario.Domain;

    [Fact]
    public async Task A_quoted_sender_and_recipient_keep_their_quotes_in_the_record_and_the_from_line_stays_parsable()
    {
        await using var s = await SpoolScenario.StartAsync();
        var result = await Swaks.SendAsync(s.Port, $"\"alice+x y\"@{Domain}", from: "\"john doe\"@example.org",
            extra: ["--header", "Message-Id: <quoted@test>"]);

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        var message = Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        Assert.Equal("<\"john doe\"@example.org>", message.ReturnPath);
        Assert.Equal($"\"alice+x y\"@{Domain}", message.OriginalTo);
        Assert.StartsWith("\"john_doe\"@example.org  ", message.FromLine, StringComparison.Ordinal);
        Assert.Equal(["<quoted@test>"], await MboxReaders.FormailMessageIdsAsync(s.AliceMailbox));
    }

    [Theory]
    [InlineData("bridgetest1@afp548.test")]
    [InlineData("alice@afp548.test")]
    [InlineData("ALICE@AFP548.TEST")]
    [InlineData("alice@localhost")]
    [InlineData("alice+newsletters@afp548.test")]
    [InlineData("bridgetest1+x@localhost")]
    public async Task Every_short_name_and_tag_lands_in_the_first_short_names_mbox(string recipient)
    {
        await using var s = await SpoolScenario.StartAsync();
        var result = await Swaks.SendAsync(s.Port, recipient, extra: ["--header", "Message-Id: <one@test>"]);

        Assert.StartsWith("250 2.0.0 Ok: queued as ", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal([TestAccounts.Alice], Directory.GetFiles(s.Spool.Path).Select(Path.GetFileName));

        var messages = await MboxReaders.PythonMailboxAsync(s.AliceMailbox);
        var message = Assert.Single(messages);
        Assert.Equal("<one@test>", message.MessageId);
        Assert.Equal(recipient, message.OriginalTo);
        Assert.Equal($"{TestAccounts.Alice}@{Domain}", message.DeliveredTo);
        Assert.Equal("<sender@example.org>", message.ReturnPath);
        Assert.StartsWith("sender@example.org  ", message.FromLine, StringComparison.Ordinal);
        Assert.Equal(["<one@test>"], await MboxReaders.FormailMessageIdsAsync(s.AliceMailbox));
        Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains($"to=<{TestAccounts.Alice}@{Domain}>, orig_to=<{recipient}>", StringComparison.Ordinal)
                                                && l.Contains("status=sent (250 2.0.0", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_new_mailbox_is_0600_owned_by_the_user_and_group_mail()
    {
        await using var s = await SpoolScenario.StartAsync();
        await Swaks.SendAsync(s.Port, $"bob@{Domain}");

        Assert.Equal(0, Libc.Lstat(s.BobMailbox, out var stat));
        Assert.Equal(s.BobIds.Uid, stat.Uid);
        Assert.Equal(Libc.GetGroupId("mail"), stat.Gid);
        Assert.Equal(Convert.ToUInt32("600", 8), stat.Permissions);
    }

    [Theory]
    [InlineData("nosuchuser@afp548.test", "550 5.1.1 <nosuchuser@afp548.test>: Recipient address rejected: User unknown in local recipient table")]
    [InlineData("alice@gmail.com", "554 5.7.1 <alice@gmail.com>: Relay access denied (domain is not in Bridge:LocalDomains)")]
    [InlineData("../bridgetest1@afp548.test", "500 5.5.2 Syntax error")]
    [InlineData("\"../../etc/passwd\"@afp548.test", "550 5.1.1")]
    [InlineData("root/../x@afp548.test", "500 5.5.2 Syntax error")]
    [InlineData("root/x@afp548.test", "550 5.1.1")]
    [InlineData(".bridgetest1@afp548.test", "500 5.5.2 Syntax error")]
    public async Task Refused_recipients_get_a_precise_reply_and_nothing_is_written(string recipient, string reply)
    {
        await using var s = await SpoolScenario.StartAsync();
        var result = await Swaks.SendAsync(s.Port, recipient);

        Assert.StartsWith(reply, result.FinalReply, StringComparison.Ordinal);
        Assert.DoesNotContain("retry(ies)", result.Transcript, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
    }

    [Fact]
    public async Task Empty_sender_is_written_as_mailer_daemon()
    {
        await using var s = await SpoolScenario.StartAsync();
        var result = await Swaks.SendAsync(s.Port, $"alice@{Domain}", from: "");

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        var message = Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        Assert.StartsWith("MAILER-DAEMON  ", message.FromLine, StringComparison.Ordinal);
        Assert.Equal("<>", message.ReturnPath);
    }

    [Fact]
    public async Task Body_lines_starting_with_From_are_quoted_and_do_not_split_the_message()
    {
        await using var s = await SpoolScenario.StartAsync();
        using var dir = new TempDir();
        var data = dir["message"];
        await File.WriteAllTextAsync(data, "Subject: from lines\nMessage-Id: <from@test>\n\nFrom the desk of George\n\nFrom me@example.org  Tue Nov 24 10:00:00 2026\n>From already quoted\nFromage");
        var result = await Swaks.SendAsync(s.Port, $"alice@{Domain}", dataFile: data);

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        var message = Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        // Python's mailbox module shows the quoting as written: mboxrd gives ">From already quoted" one more ">".
        Assert.Equal(">From the desk of George\n\n>From me@example.org  Tue Nov 24 10:00:00 2026\n>>From already quoted\nFromage\n", message.BodyText);
        Assert.Equal(["<from@test>"], await MboxReaders.FormailMessageIdsAsync(s.AliceMailbox));
    }

    [Fact]
    public async Task Eight_bit_and_crlf_input_arrive_byte_exact_with_lf_line_ends()
    {
        await using var s = await SpoolScenario.StartAsync();
        using var dir = new TempDir();
        var data = dir["message"];
        byte[] body = [.. "caf\u00e9 "u8, 0xE9, 0xFF, (byte)' ', .. "\u00fcbung \u65e5\u672c"u8];
        var message = (byte[])[.. "Subject: 8bit\r\nMessage-Id: <8bit@test>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"u8, .. body, .. "\r\nsecond line"u8];
        await File.WriteAllBytesAsync(data, message);
        var result = await Swaks.SendAsync(s.Port, $"alice@{Domain}", dataFile: data);

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        var raw = await File.ReadAllBytesAsync(s.AliceMailbox);
        Assert.DoesNotContain((byte)'\r', raw);
        var read = Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        Assert.Equal((byte[])[.. body, .. "\nsecond line\n"u8], read.Body);
    }

    [Fact]
    public async Task Appends_after_existing_mail_and_strips_dovecot_bookkeeping_headers()
    {
        await using var s = await SpoolScenario.StartAsync();
        SpoolScenario.CreateMailbox(s.AliceMailbox, SpoolScenario.SampleMbox, s.AliceIds.Uid, s.AliceIds.Gid);
        using var dir = new TempDir();
        var data = dir["message"];
        await File.WriteAllTextAsync(data, "Subject: second\nStatus: RO\nX-UID: 77\nX-Keywords: $Junk\nContent-Length: 5\nMessage-Id: <second@test>\n\nhello");
        await Swaks.SendAsync(s.Port, $"alice@{Domain}", dataFile: data);

        var bytes = await File.ReadAllBytesAsync(s.AliceMailbox);
        Assert.Equal(SpoolScenario.SampleMbox, bytes[..SpoolScenario.SampleMbox.Length]);
        var text = Encoding.UTF8.GetString(bytes);
        Assert.DoesNotContain("X-UID", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Status: RO", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Content-Length", text, StringComparison.Ordinal);
        Assert.EndsWith("\n\nhello\n\n", text, StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).Count);
    }

    [Fact]
    public async Task Received_header_is_added_at_intake()
    {
        await using var s = await SpoolScenario.StartAsync();
        await Swaks.SendAsync(s.Port, $"alice@{Domain}");

        var text = await File.ReadAllTextAsync(s.AliceMailbox);
        Assert.Matches(@"\nReceived: from client\.test \(\[127\.0\.0\.1\]\)\n\tby bridge\.localhost \(Bridge\) with ESMTP id [0-9A-F]{16}\n\tfor <alice@afp548\.test>; \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\n", text);
    }

    [Fact]
    public async Task A_message_for_two_users_reaches_both_and_duplicate_names_of_one_user_give_one_copy()
    {
        await using var s = await SpoolScenario.StartAsync();
        var result = await Swaks.SendAsync(s.Port, $"alice@{Domain},bob@{Domain},bridgetest1@{Domain}");

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.BobMailbox));
    }

    [Fact]
    public async Task A_delivered_to_loop_is_refused_554_5_4_6()
    {
        await using var s = await SpoolScenario.StartAsync();
        var result = await Swaks.SendAsync(s.Port, $"alice@{Domain}", extra: ["--header", $"Delivered-To: {TestAccounts.Alice}@{Domain}"]);

        Assert.StartsWith("554 5.4.6 ", result.FinalReply, StringComparison.Ordinal);
        Assert.False(File.Exists(s.AliceMailbox));
    }

    [Fact]
    public async Task Ehlo_names_bridge_and_advertises_enhanced_status_codes_and_size()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:MaxMessageBytes=100000");
        var result = await Swaks.SendAsync(s.Port, $"alice@{Domain}", extra: ["--quit-after", "EHLO"]);

        Assert.Contains("<-  220 bridge.localhost ESMTP Bridge", result.Transcript, StringComparison.Ordinal);
        Assert.Contains("<-  250-bridge.localhost", result.Transcript, StringComparison.Ordinal);
        Assert.Contains("250-SIZE 100000", result.Transcript, StringComparison.Ordinal);
        Assert.Contains("ENHANCEDSTATUSCODES", result.Transcript, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_body_over_MaxMessageBytes_sent_without_SIZE_gets_552_5_3_4_and_nothing_is_written()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:MaxMessageBytes=2000");
        var result = await Swaks.SendAsync(s.Port, $"alice@{Domain}", body: new string('x', 5000));

        Assert.StartsWith("552 5.3.4 Message size exceeds fixed limit of 2000 bytes", result.FinalReply, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
    }
}
