using System.Buffers;
using System.Text;
using Bridge.Common;
using Bridge.Delivery;
using Bridge.Delivery.Bounces;
using MimeKit;

namespace Bridge.UnitTests.Delivery.Bounces;

/// <summary>Pure logic: the RFC 3464 report Bridge sends for recipients that failed for good.</summary>
public class DsnBuilderTests
{
    private static DeliveryRequest Request(string body, Dictionary<string, string>? mailParameters = null) => new(
        "0A1B2C3D4E5F6A7B",
        "alice@example.org",
        [],
        Encoding.ASCII.GetBytes("Received: from client.test\r\n\tby bridge.localhost (Bridge) with ESMTP id 0A1B2C3D4E5F6A7B\r\n"),
        new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(body)),
        new MessageHeaderSummary(1, []),
        mailParameters ?? []);

    private static RecipientOutcome Failed(string address, DeliveryStatus status) =>
        new(new RoutedRecipient(address, new LocalUser("carol", 1001, 1001, null), "carol@example.org"), status, "spool:/var/mail", 1);

    [Fact]
    public void The_report_names_each_failed_recipient_with_its_status_and_returns_headers_only()
    {
        var body = "Subject: hello\r\nMessage-Id: <m1@example.org>\r\n\r\nsecret body text\r\n";
        var dsn = DsnBuilder.Build("bridge.localhost", Request(body),
            [Failed("carol@example.org", DeliveryStatus.MailboxFull("carol")), Failed("dave@example.org", new DeliveryStatus(550, "5.1.1", "no such user"))],
            new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero));

        Assert.Equal("MAILER-DAEMON@bridge.localhost", dsn.From.Mailboxes.Single().Address);
        Assert.Equal("alice@example.org", dsn.To.Mailboxes.Single().Address);
        Assert.Equal("auto-replied", dsn.Headers["Auto-Submitted"]);
        var report = Assert.IsType<MultipartReport>(dsn.Body);
        Assert.Equal("delivery-status", report.ReportType);
        Assert.Equal(3, report.Count);

        var human = Assert.IsType<TextPart>(report[0]).Text;
        Assert.Contains("<carol@example.org>: 552 5.2.2 Mailbox carol is full", human, StringComparison.Ordinal);
        Assert.Contains("<dave@example.org>: 550 5.1.1 no such user", human, StringComparison.Ordinal);

        var groups = Assert.IsType<MessageDeliveryStatus>(report[1]).StatusGroups;
        Assert.Equal(3, groups.Count);
        Assert.Equal("dns; bridge.localhost", groups[0]["Reporting-MTA"]);
        Assert.Equal("0A1B2C3D4E5F6A7B", groups[0]["X-Bridge-Queue-ID"]);
        Assert.Equal("Tue, 1 Dec 2026 09:00:00 +0000", groups[0]["Arrival-Date"]);
        Assert.Equal(("rfc822; carol@example.org", "failed", "5.2.2", "smtp; 552 5.2.2 Mailbox carol is full"),
            (groups[1]["Final-Recipient"], groups[1]["Action"], groups[1]["Status"], groups[1]["Diagnostic-Code"]));
        Assert.Equal(("rfc822; dave@example.org", "5.1.1"), (groups[2]["Final-Recipient"], groups[2]["Status"]));

        var returned = Assert.IsType<TextRfc822Headers>(report[2]).Message!;
        Assert.Equal("hello", returned.Subject);
        Assert.Equal("m1@example.org", returned.MessageId);
        Assert.Contains("by bridge.localhost (Bridge)", returned.Headers[HeaderId.Received], StringComparison.Ordinal);
        using var bytes = new MemoryStream();
        dsn.WriteTo(bytes);
        Assert.DoesNotContain("secret body text", Encoding.ASCII.GetString(bytes.ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public void Envid_orcpt_and_ret_full_appear_as_rfc_3461_asks_and_a_delivery_notice_says_delivered()
    {
        var body = "Subject: hello\r\n\r\nthe whole body\r\n";
        var recipient = new RoutedRecipient("info@example.org", new LocalUser("carol", 1001, 1001, null), "carol@example.org")
        {
            Notify = "SUCCESS",
            Orcpt = "rfc822;info+2Bsales@example.org",
        };
        var dsn = DsnBuilder.Build("bridge.localhost", Request(body, new() { ["ENVID"] = "QQ+2B314", ["RET"] = "FULL" }),
            [new RecipientOutcome(recipient, DeliveryStatus.Delivered("0A1B2C3D4E5F6A7B"), "spool:/var/mail", 1)],
            new DateTimeOffset(2026, 12, 1, 9, 0, 0, TimeSpan.Zero), DsnAction.Delivered);

        Assert.Equal("Successful Mail Delivery Report", dsn.Subject);
        var report = Assert.IsType<MultipartReport>(dsn.Body);
        var groups = Assert.IsType<MessageDeliveryStatus>(report[1]).StatusGroups;
        Assert.Equal("QQ+314", groups[0]["Original-Envelope-Id"]);
        Assert.Equal(("rfc822; info+sales@example.org", "rfc822; info@example.org", "delivered", "2.0.0"),
            (groups[1]["Original-Recipient"], groups[1]["Final-Recipient"], groups[1]["Action"], groups[1]["Status"]));
        var returned = Assert.IsType<MessagePart>(report[2]).Message!; // RET=FULL: the whole message
        using var bytes = new MemoryStream();
        returned.WriteTo(bytes);
        Assert.Contains("the whole body", Encoding.ASCII.GetString(bytes.ToArray()), StringComparison.Ordinal);
    }
}
