using System.Net.Sockets;
using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Tests.Intake;

/// <summary>Hostile and broken input over a raw socket: a precise reply, nothing written, and the server
/// still delivers a normal message afterwards.</summary>
public class BadInputTests
{
    private const string Alice = "alice@" + SpoolScenario.Domain;

    public static TheoryData<string, string[], string> Corpus => new()
    {
        { "CR in MAIL", ["EHLO x", "MAIL FROM:<a\rb@example.org>"], "500 5.5.2 " },
        { "LF in RCPT", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<ali\nce@afp548.test>"], "500 5.5.2 " },
        { "NUL in RCPT", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<ali\0ce@afp548.test>"], "500 5.5.2 " },
        { "../ in local part", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<../alice@afp548.test>"], "500 5.5.2 " },
        { "quoted ../ local part", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<\"../../etc/passwd\"@afp548.test>"], "550 5.1.1 " },
        { "/ in local part", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<alice/x@afp548.test>"], "550 5.1.1 " },
        { "8-bit in a command", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<al\u00e9ce@afp548.test>"], "553 5.1.3 " }, // needs SMTPUTF8 (RFC 6531)
        { "1 MB line", ["EHLO x", "MAIL FROM:<" + new string('a', 1_000_000) + "@example.org>"], "553 5.1.3 " },
        { "RCPT before MAIL", ["EHLO x", "RCPT TO:<alice@afp548.test>"], "503 5.5.1 " },
        { "SIZE over the limit", ["EHLO x", "MAIL FROM:<a@example.org> SIZE=999999999"], "552 5.3.4 " },
        { "DATA without RCPT", ["EHLO x", "MAIL FROM:<a@example.org>", "DATA"], "503 5.5.1 " },
        { "unknown command", ["EHLO x", "XYZZY plugh"], "500 5.5.2 " },
        { "binary garbage", ["EHLO x", "\u0001\u0002\u00ff\u00fe"], "500 5.5.2 " },
        { "repeated SIZE", ["EHLO x", "MAIL FROM:<> SIZE=1 SIZE=2"], "501 5.5.4 Duplicate MAIL parameter SIZE" },
        { "repeated SMTPUTF8", ["EHLO x", "MAIL FROM:<a@example.org> SMTPUTF8 SMTPUTF8"], "501 5.5.4 Duplicate MAIL parameter SMTPUTF8" },
        { "5000-character parameter", ["EHLO x", "MAIL FROM:<a@example.org> X-LONG=" + new string('v', 5000)], "501 5.5.4 Parameter longer than 1000 bytes" },
        { "SIZE=abc", ["EHLO x", "MAIL FROM:<a@example.org> SIZE=abc"], "501 5.5.4 Bad SIZE parameter" },
        { "SIZE=-1", ["EHLO x", "MAIL FROM:<a@example.org> SIZE=-1"], "501 5.5.4 Bad SIZE parameter" },
        { "SIZE of 21 digits", ["EHLO x", "MAIL FROM:<a@example.org> SIZE=123456789012345678901"], "501 5.5.4 Bad SIZE parameter" },
        { "SIZE beyond 64 bits", ["EHLO x", "MAIL FROM:<a@example.org> SIZE=99999999999999999999"], "552 5.3.4 " },
        { "BODY=FOO", ["EHLO x", "MAIL FROM:<a@example.org> BODY=FOO"], "501 5.5.4 Bad BODY parameter" },
        { "BODY=BINARYMIME", ["EHLO x", "MAIL FROM:<a@example.org> BODY=BINARYMIME"], "555 5.5.4 Unsupported BODY=BINARYMIME" },
        { "SMTPUTF8 with a value", ["EHLO x", "MAIL FROM:<a@example.org> SMTPUTF8=yes"], "501 5.5.4 SMTPUTF8 takes no value" },
        { "unknown MAIL parameter", ["EHLO x", "MAIL FROM:<a@example.org> FOO=bar"], "555 5.5.4 Unsupported MAIL parameter FOO" },
        { "bad parameter keyword", ["EHLO x", "MAIL FROM:<a@example.org> =x"], "501 5.5.4 Bad parameter keyword" },
        { "RCPT parameter of an extension not offered", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<alice@afp548.test> XFOO=1"], "555 5.5.4 Unsupported RCPT parameter XFOO" },
        { "NOTIFY with an unknown word", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<alice@afp548.test> NOTIFY=SOMETIMES"], "501 5.5.4 Bad NOTIFY parameter" },
        { "NOTIFY=NEVER with another word", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<alice@afp548.test> NOTIFY=NEVER,SUCCESS"], "501 5.5.4 Bad NOTIFY parameter" },
        { "ORCPT without addr-type", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<alice@afp548.test> ORCPT=alice@afp548.test"], "501 5.5.4 Bad ORCPT parameter" },
        { "ORCPT with bad xtext", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<alice@afp548.test> ORCPT=rfc822;a+zz"], "501 5.5.4 Bad ORCPT parameter" },
        { "repeated NOTIFY", ["EHLO x", "MAIL FROM:<a@example.org>", "RCPT TO:<alice@afp548.test> NOTIFY=NEVER NOTIFY=NEVER"], "501 5.5.4 Duplicate RCPT parameter NOTIFY" },
        { "RET other than FULL or HDRS", ["EHLO x", "MAIL FROM:<a@example.org> RET=ALL"], "501 5.5.4 Bad RET parameter" },
        { "ENVID with bad xtext", ["EHLO x", "MAIL FROM:<a@example.org> ENVID=a+1"], "501 5.5.4 Bad ENVID parameter" },
        { "control character in a quoted sender", ["EHLO x", "MAIL FROM:<\"a\\tb\"@example.org>"], "553 5.1.7 " }, // SmtpServer unescapes \t to a TAB
    };

    [Fact]
    public async Task Valid_mail_parameters_are_accepted_and_the_message_delivered()
    {
        await using var s = await SpoolScenario.StartAsync();
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        await session.CommandAsync("EHLO x");
        Assert.StartsWith("250 ", await session.CommandAsync("MAIL FROM:<a@example.org> size=200 BODY=8bitmime SMTPUTF8"), StringComparison.Ordinal);
        Assert.StartsWith("250 ", await session.CommandAsync($"RCPT TO:<{Alice}>"), StringComparison.Ordinal);
        Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
        await session.SendAsync("Subject: params\r\n\r\nMAIL FROM:<> SIZE=1 SIZE=2\r\nRCPT TO:<x@y> NOTIFY=NEVER\r\n.");
        Assert.StartsWith("250 2.0.0 ", await session.ReadReplyAsync(), StringComparison.Ordinal);
        session.Dispose();
        var message = Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        Assert.EndsWith("MAIL FROM:<> SIZE=1 SIZE=2\nRCPT TO:<x@y> NOTIFY=NEVER\n", message.BodyText, StringComparison.Ordinal); // body lines are not commands
    }

    [Fact]
    public async Task A_header_folded_over_a_megabyte_is_read_in_linear_time()
    {
        await using var s = await SpoolScenario.StartAsync();
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        await session.CommandAsync("EHLO x");
        await session.CommandAsync("MAIL FROM:<a@example.org>");
        await session.CommandAsync($"RCPT TO:<{Alice}>");
        Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
        var folded = new StringBuilder("X-Folded: start\r\n");
        while (folded.Length < 1_100_000)
        {
            folded.Append(" x\r\n"); // 275,000 continuation lines of one field
        }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await session.SendAsync(folded + "Subject: folded\r\n\r\nbody\r\n.");

        Assert.StartsWith("250 2.0.0 ", await session.ReadReplyAsync(), StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"a 1 MB folded header took {clock.Elapsed} (quadratic: 8-54 s)");
        session.Dispose();
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
    }

    [Theory]
    [MemberData(nameof(Corpus))]
    public async Task Each_bad_command_gets_its_reply_writes_nothing_and_the_server_still_works(string name, string[] lines, string reply)
    {
        await using var s = await SpoolScenario.StartAsync();
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        string last = "";
        foreach (var line in lines)
        {
            last = await session.CommandAsync(line);
        }
        session.Dispose();

        Assert.True(last.StartsWith(reply, StringComparison.Ordinal), $"{name}: got \"{last}\"");
        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
        Assert.StartsWith("250 2.0.0 ", (await Swaks.SendAsync(s.Port, Alice)).FinalReply, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("bare LF in the body", "Subject: x\r\n\r\nline one\nline two\r\n")]
    [InlineData("bare LF dot LF smuggling", "Subject: x\r\n\r\nhello\n.\nMAIL FROM:<evil@example.org>\r\nmore\r\n")]
    [InlineData("a message starting with LF", "\nSubject: x\r\n\r\nbody\r\n")]
    public async Task Bare_lf_in_data_is_refused_550_5_5_2_and_nothing_is_written(string name, string message)
    {
        await using var s = await SpoolScenario.StartAsync();
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        await session.CommandAsync("EHLO x");
        await session.CommandAsync("MAIL FROM:<a@example.org>");
        await session.CommandAsync($"RCPT TO:<{Alice}>");
        Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
        await session.SendAsync(message + ".");

        var reply = await session.ReadReplyAsync();
        Assert.True(reply.StartsWith("550 5.5.2 Bare <LF>", StringComparison.Ordinal), $"{name}: {reply}");
        Assert.StartsWith("250 ", await session.CommandAsync("RSET"), StringComparison.Ordinal);
        session.Dispose();
        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
    }

    [Fact]
    public async Task A_client_that_stalls_inside_data_is_closed_with_421_4_4_2_and_nothing_is_written()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:CommandTimeout=00:00:02");
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        await session.CommandAsync("EHLO x");
        await session.CommandAsync("MAIL FROM:<a@example.org>");
        await session.CommandAsync($"RCPT TO:<{Alice}>");
        await session.CommandAsync("DATA");
        await session.SendAsync("Subject: slow loris");

        Assert.Equal("421 4.4.2 Idle timeout, closing connection", await session.ReadReplyAsync());
        Assert.Equal("(closed)", await session.ReadReplyAsync());
        session.Dispose();
        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
        Assert.StartsWith("250 ", (await Swaks.SendAsync(s.Port, Alice)).FinalReply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_thousand_recipients_beyond_the_limit_get_452_are_no_errors_and_the_message_reaches_the_accepted_one()
    {
        // 200 times MaxErrorsPerSession: a 452 for too many recipients is not a client error (RFC 5321 4.5.3.1.10).
        await using var s = await SpoolScenario.StartAsync("Bridge:MaxRecipients=1", "Bridge:MaxErrorsPerSession=5");
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        await session.CommandAsync("EHLO x");
        await session.CommandAsync("MAIL FROM:<a@example.org>");
        Assert.StartsWith("250 ", await session.CommandAsync($"RCPT TO:<{Alice}>"), StringComparison.Ordinal);
        for (var i = 0; i < 1000; i++)
        {
            Assert.Equal("452 4.5.3 Too many recipients (at most 1 per message)", await session.CommandAsync($"RCPT TO:<bob+{i}@afp548.test>"));
        }
        Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
        await session.SendAsync("Subject: many\r\n\r\nbody\r\n.");
        Assert.StartsWith("250 2.0.0 ", await session.ReadReplyAsync(), StringComparison.Ordinal);
        session.Dispose();
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        Assert.False(File.Exists(s.BobMailbox));
    }

    [Fact]
    public async Task Too_many_errors_in_a_row_end_the_session_with_421_4_7_0()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:MaxErrorsPerSession=5");
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        await session.CommandAsync("EHLO x");
        for (var i = 0; i < 4; i++)
        {
            Assert.StartsWith("500 5.5.2 ", await session.CommandAsync("BOGUS"), StringComparison.Ordinal);
        }

        Assert.StartsWith("500 5.5.2 ", await session.CommandAsync("BOGUS"), StringComparison.Ordinal);
        Assert.Equal("421 4.7.0 Too many errors, closing connection", await session.ReadReplyAsync());
        Assert.Equal("(closed)", await session.ReadReplyAsync());
        session.Dispose();
    }

    [Fact]
    public async Task A_client_streaming_a_body_without_end_is_cut_off_with_552_5_3_4_long_before_it_stops()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:MaxMessageBytes=100000");
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        await session.CommandAsync("EHLO x");
        await session.CommandAsync("MAIL FROM:<a@example.org>");
        await session.CommandAsync($"RCPT TO:<{Alice}>");
        Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);

        var line = new string('z', 998);
        var sent = 0L;
        try
        {
            for (var i = 0; i < 200_000; i++) // 200 MB if nobody stopped it
            {
                await session.SendAsync(line);
                sent += 1000;
            }
        }
        catch (IOException)
        {
            // the server closed the connection: expected
        }

        Assert.True(sent < 20_000_000, $"the server read {sent} bytes before stopping");
        Assert.Equal("552 5.3.4 Message size exceeds fixed limit, closing connection", await session.ReadReplyAsync());
        session.Dispose();
        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
        Assert.StartsWith("250 ", (await Swaks.SendAsync(s.Port, Alice)).FinalReply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pipelined_garbage_gets_one_reply_per_line_and_writes_nothing()
    {
        await using var s = await SpoolScenario.StartAsync();
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        await session.CommandAsync("EHLO x");
        await session.SendAsync("FOO bar\r\nMAIL\r\n\u0000\u0001\u0002\r\nRCPT TO:\r\nDATA\r\nNOOP");

        string[] replies = [await session.ReadReplyAsync(), await session.ReadReplyAsync(), await session.ReadReplyAsync(),
            await session.ReadReplyAsync(), await session.ReadReplyAsync(), await session.ReadReplyAsync()];
        session.Dispose();

        Assert.All(replies[..5], r => Assert.Matches("^50[03] 5\\.5\\.[12] ", r));
        Assert.StartsWith("250 2.0.0", replies[5], StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
        Assert.StartsWith("250 ", (await Swaks.SendAsync(s.Port, Alice)).FinalReply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_line_over_Bridge_MaxLineBytes_gets_500_5_5_2_and_the_connection_is_closed()
    {
        await using var s = await SpoolScenario.StartAsync();
        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        await session.CommandAsync("EHLO x");
        try
        {
            await session.SendAsync("MAIL FROM:<" + new string('a', 3 << 20) + "@example.org>");
        }
        catch (IOException)
        {
            // closed while we were still sending
        }

        Assert.Equal("500 5.5.2 Line too long, closing connection", await session.ReadReplyAsync());
        session.Dispose();
        Assert.StartsWith("250 ", (await Swaks.SendAsync(s.Port, Alice)).FinalReply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bounded_fuzz_of_the_dialogue_writes_nothing_and_leaves_the_server_answering()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:CommandTimeout=00:00:02");
        var random = new Random(20261124);
        string[] verbs = ["EHLO", "HELO", "MAIL FROM:", "RCPT TO:", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "STARTTLS", "AUTH PLAIN", "BDAT 10", "."];
        for (var sessionNo = 0; sessionNo < 40; sessionNo++)
        {
            using var client = new TcpClient();
            await client.ConnectAsync(System.Net.IPAddress.Loopback, s.Port);
            var stream = client.GetStream();
            for (var command = 0; command < 15; command++)
            {
                var bytes = new byte[random.Next(0, 60)];
                random.NextBytes(bytes);
                var line = random.Next(3) switch
                {
                    0 => bytes,
                    1 => [.. Encoding.ASCII.GetBytes(verbs[random.Next(verbs.Length)] + " "), .. bytes],
                    _ => Encoding.ASCII.GetBytes(verbs[random.Next(verbs.Length)] + " <" + Convert.ToBase64String(bytes) + "@afp548.test>"),
                };
                try
                {
                    await stream.WriteAsync((byte[])[.. line, .. "\r\n"u8]);
                }
                catch (IOException)
                {
                    break; // the server closed this session (QUIT, too many errors): fine
                }
            }
            await Task.Delay(20);
        }

        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
        Assert.StartsWith("250 2.0.0 ", (await Swaks.SendAsync(s.Port, Alice)).FinalReply, StringComparison.Ordinal);
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        Assert.DoesNotContain(s.Bridge.Logs.Lines, l => l.StartsWith("Error", StringComparison.Ordinal) || l.StartsWith("Critical", StringComparison.Ordinal));
    }
}
