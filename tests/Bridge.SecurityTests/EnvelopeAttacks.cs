using System.Text;
using Bridge.Tests.Support;

namespace Bridge.SecurityTests;

/// <summary>Issue #23 items 8 and 9, from a client the intruder runs: envelope addresses with bytes that are not ASCII
/// (or, with SMTPUTF8, not UTF-8) over SMTP and over the LMTP socket must be refused and never written as U+FFFD; and
/// one RCPT with NOTIFY=SUCCESS to a large alias must not make Bridge mail one notice with a line per member.</summary>
public class EnvelopeAttacks
{
    private const string Domain = Daemon.Domain;

    [Theory]
    [InlineData("smtp")]
    [InlineData("lmtp")]
    public async Task Envelope_bytes_that_are_not_ascii_or_not_utf8_get_553_and_nothing_is_written(string protocol)
    {
        var intruder = await Intruder.EnsureAsync();
        using var sockets = new TempDir("bridge-sock", TempDir.Mode("755"));
        await using var daemon = await Daemon.StartAsync(RunAs.Root, $"Bridge:Lmtp:Socket={sockets["lmtp"]}", "Bridge:Lmtp:SocketMode=0666");
        var connect = protocol == "smtp"
            ? $"s = socket.create_connection(('127.0.0.1', {daemon.Port}))"
            : $"s = socket.socket(socket.AF_UNIX); s.connect('{sockets["lmtp"]}')";
        var hello = protocol == "smtp" ? "EHLO client.test" : "LHLO client.test";
        var alice = $"{TestAccounts.Alice}@{Domain}";
        var run = await intruder.PythonAsync($$"""
            import socket
            {{connect}}
            f = s.makefile('rb')
            def reply():
                while True:
                    line = f.readline().decode('latin-1').rstrip('\r\n')
                    if line[3:4] != '-':
                        return line
            def cmd(line):
                s.sendall(line + b'\r\n')
                print(reply())
            print(reply())
            cmd(b'{{hello}}')
            cmd(b'MAIL FROM:<\xff\xfe@c.d>')
            cmd(b'MAIL FROM:<\xff\xfe@c.d> SMTPUTF8')
            cmd(b'MAIL FROM:<a@c.d>')
            cmd(b'RCPT TO:<\xc3\xb6{{alice}}>')
            cmd(b'RSET')
            cmd(b'MAIL FROM:<a@c.d> SMTPUTF8')
            cmd(b'RCPT TO:<\xc3{{alice}}>')
            cmd(b'RSET')
            cmd(b'MAIL FROM:<j\xc3\xb6rg@c.d> SMTPUTF8')
            cmd(b'RCPT TO:<{{alice}}>')
            cmd(b'DATA')
            cmd(b'Subject: utf-8 sender\r\n\r\nhello\r\n.')
            cmd(b'QUIT')
            """);
        Assert.True(run.ExitCode == 0, run.Output);
        var replies = run.Stdout.Split('\n');
        Assert.StartsWith("553 5.1.7 Bad sender address syntax: 8-bit characters need SMTPUTF8", replies[2], StringComparison.Ordinal);
        Assert.StartsWith("553 5.1.7 Bad sender address syntax: it is not valid UTF-8", replies[3], StringComparison.Ordinal);
        Assert.StartsWith("250 ", replies[4], StringComparison.Ordinal);
        Assert.StartsWith("553 5.1.3 Bad recipient address syntax: 8-bit characters need SMTPUTF8", replies[5], StringComparison.Ordinal);
        Assert.StartsWith("553 5.1.3 Bad recipient address syntax: it is not valid UTF-8", replies[8], StringComparison.Ordinal);
        Assert.StartsWith("250 ", replies[13], StringComparison.Ordinal); // a valid UTF-8 sender with SMTPUTF8 is delivered

        var mailbox = await File.ReadAllBytesAsync(daemon.Spool[TestAccounts.Alice]);
        Assert.Equal(-1, mailbox.AsSpan().IndexOf("\xEF\xBF\xBD"u8.ToArray())); // no U+FFFD anywhere
        Assert.Contains("From j?rg@c.d ", Encoding.UTF8.GetString(mailbox), StringComparison.Ordinal); // readers parse From_ lines as ASCII
        Assert.Contains("Return-Path: <j\u00f6rg@c.d>", Encoding.UTF8.GetString(mailbox), StringComparison.Ordinal);
        Assert.Single(await MboxReaders.PythonMailboxAsync(daemon.Spool[TestAccounts.Alice]));
    }

    [Fact]
    public async Task Notify_success_to_a_large_alias_gets_one_expanded_notice_for_the_alias_not_one_line_per_member()
    {
        var intruder = await Intruder.EnsureAsync();
        using var sink = await SmtpSink.StartAsync();
        using var etc = new TempDir("bridge-etc", TempDir.Mode("755"));
        var members = Enumerable.Range(0, 200).Select(i => $"member{i}").ToList();
        await File.WriteAllTextAsync(etc["aliases"], $"everyone: {string.Join(", ", members)}\n");
        await using var daemon = await Daemon.StartAsync(RunAs.Root, [$"Bridge:AliasFiles:0={etc["aliases"]}", $"Bridge:Bounces:Relay=127.0.0.1:{sink.Port}",
            .. members.Select((m, i) => $"Bridge:Users:{i}:ShortNames:0={m}")]);

        var run = await intruder.PythonAsync($$"""
            import smtplib
            s = smtplib.SMTP('127.0.0.1', {{daemon.Port}})
            s.ehlo('client.test')
            print(s.sendmail('outside@example.org', ['everyone@{{Domain}}'], b'Subject: hi\r\n\r\nhi\r\n', rcpt_options=['NOTIFY=SUCCESS']))
            s.quit()
            """);
        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Equal(200, Directory.GetFiles(daemon.Spool.Path).Count(f => Path.GetFileName(f).StartsWith("member", StringComparison.Ordinal)));

        await Eventually.WaitAsync(() => sink.Received >= 1, 15, () => daemon.Log);
        await Task.Delay(1000); // any notice per member would be here by now
        var notice = Assert.Single(sink.Dumps);
        Assert.Contains("Action: expanded", notice, StringComparison.Ordinal);
        Assert.Contains($"Final-Recipient: rfc822; everyone@{Domain}", notice, StringComparison.Ordinal);
        Assert.Single(notice.Split('\n'), l => l.StartsWith("Final-Recipient:", StringComparison.Ordinal));
        Assert.DoesNotContain("Action: delivered", notice, StringComparison.Ordinal);
    }
}
