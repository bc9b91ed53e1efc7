using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Tests.EndToEnd;

/// <summary>swaks -> Bridge -> /var/mail-style spool, read by a real Dovecot over IMAP (MailKit).</summary>
public class DovecotReaderTests
{
    [Theory]
    [InlineData("Mboxrd")]
    [InlineData("Mboxo")]
    public async Task Dovecot_sees_every_delivered_message_with_a_byte_correct_body(string format)
    {
        await using var s = await SpoolScenario.StartAsync($"Bridge:Spool:Format={format}");
        using var dir = new TempDir();
        string[] bodies =
        [
            "plain body\nsecond line",
            "From the top\n>From quoted\n.leading dot\n..two dots",
            "8-bit: caf\u00e9 \u00fcbung \u65e5\u672c",
        ];
        for (var i = 0; i < bodies.Length; i++)
        {
            var data = dir[$"m{i}"];
            await File.WriteAllTextAsync(data, $"Subject: message {i}\nMessage-Id: <dovecot-{i}@test>\nContent-Type: text/plain; charset=utf-8\n\n{bodies[i]}");
            var result = await Swaks.SendAsync(s.Port, $"alice@{SpoolScenario.Domain}", from: i == 1 ? "" : "sender@example.org", dataFile: data);
            Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        }

        await using var dovecot = await DovecotServer.StartMboxReaderAsync(s.Spool.Path, TestAccounts.Alice);
        var messages = await dovecot.FetchInboxAsync(TestAccounts.Alice);

        Assert.Equal(bodies.Length, messages.Count);
        for (var i = 0; i < bodies.Length; i++)
        {
            var text = Encoding.UTF8.GetString(messages[i]);
            var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            var headers = text[..split];
            var body = text[(split + 4)..];
            // Dovecot shows the quoting of "From " lines as written (mboxo: "From ", mboxrd also ">From " one more ">");
            // everything else, 8-bit included, arrives as sent (CRLF over IMAP).
            var quoted = format == "Mboxrd" ? bodies[i].Replace(">From quoted", ">>From quoted", StringComparison.Ordinal) : bodies[i];
            var expected = quoted.Replace("From the top", ">From the top", StringComparison.Ordinal).Replace("\n", "\r\n", StringComparison.Ordinal) + "\r\n";
            Assert.Equal(expected, body);
            Assert.Contains($"Message-Id: <dovecot-{i}@test>", headers, StringComparison.Ordinal);
            Assert.Contains($"Delivered-To: {TestAccounts.Alice}@{SpoolScenario.Domain}", headers, StringComparison.Ordinal);
            Assert.Contains("by bridge.localhost (Bridge) with ESMTP id ", headers, StringComparison.Ordinal);
        }
        Assert.Contains("Return-Path: <>", Encoding.UTF8.GetString(messages[1]), StringComparison.Ordinal);
        Assert.DoesNotContain("corrupt", await File.ReadAllTextAsync(dovecot.LogPath), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Bridge_keeps_appending_to_a_mailbox_dovecot_has_rewritten()
    {
        await using var s = await SpoolScenario.StartAsync();
        await Swaks.SendAsync(s.Port, $"alice@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <before@test>"]);
        await using var dovecot = await DovecotServer.StartMboxReaderAsync(s.Spool.Path, TestAccounts.Alice);
        Assert.Single(await dovecot.FetchInboxAsync(TestAccounts.Alice)); // Dovecot adds its X-UID/X-IMAPbase headers

        var result = await Swaks.SendAsync(s.Port, $"alice@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <after@test>"]);

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        var messages = await dovecot.FetchInboxAsync(TestAccounts.Alice);
        Assert.Equal(2, messages.Count);
        Assert.Contains("<after@test>", Encoding.UTF8.GetString(messages[1]), StringComparison.Ordinal);
        Assert.Equal(["<before@test>", "<after@test>"], await MboxReaders.FormailMessageIdsAsync(s.AliceMailbox));
    }
}
