using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.Tests.Intake;

/// <summary>LMTP intake (RFC 2033) on a Unix socket: LHLO, one reply per recipient after the message, each mailbox
/// committed on its own; with real Postfix (lmtp:unix:, deploy/postfix/main.cf.lmtp) and Exim (deploy/exim LMTP
/// transport) as clients, and the file system deciding who may connect.</summary>
public partial class LmtpTests
{
    private const string Domain = SpoolScenario.Domain;

    private static string Message(string id) => $"Message-Id: <{id}>\r\nSubject: lmtp\r\n\r\nbody of {id}\r\n";

    /// <summary>A mailbox just under the limit the tests set (Bridge:Spool:MaxMailboxBytes=4000): its RCPT is accepted
    /// (the quota check at RCPT sees room), and any message takes it over the limit after DATA.</summary>
    private static readonly byte[] FullMailbox = Encoding.ASCII.GetBytes("From old@example.org  Mon Nov 23 10:00:00 2026\nSubject: big\n\n" + new string('x', 3900) + "\n\n");

    private static async Task<List<MboxMessage>> MessagesAsync(string mailbox) =>
        File.Exists(mailbox) ? [.. await MboxReaders.PythonMailboxAsync(mailbox)] : [];

    [Fact]
    public async Task Each_recipient_gets_its_own_reply_in_rcpt_order_and_its_mailbox_is_committed_on_its_own()
    {
        var carol = await TestAccounts.EnsureAsync(TestAccounts.Carol);
        using var sockets = new TempDir("bridge-lmtp");
        var socket = sockets["lmtp"];
        await using var s = await SpoolScenario.StartAsync($"Bridge:Lmtp:Socket={socket}", "Bridge:Spool:MaxMailboxBytes=4000");
        SpoolScenario.CreateMailbox(s.BobMailbox, FullMailbox, s.BobIds.Uid, s.BobIds.Gid);

        Assert.Equal(0, Libc.Lstat(socket, out var stat));
        Assert.True(stat.IsSocket);
        Assert.Equal(Convert.ToUInt32("660", 8), stat.Permissions);
        Assert.Equal(Libc.GetGroupId("mail"), stat.Gid);

        var (session, greeting) = await RawSmtp.ConnectUnixAsync(socket);
        using (session)
        {
            Assert.Equal("220 bridge.localhost LMTP Bridge", greeting);
            Assert.Equal("500 5.5.1 This is LMTP (RFC 2033): say LHLO, not HELO or EHLO", await session.CommandAsync("EHLO client.test"));
            Assert.StartsWith("503 5.5.1 Bad sequence of commands", await session.CommandAsync("MAIL FROM:<a@example.org>"), StringComparison.Ordinal);
            Assert.Equal("250 DSN", await session.CommandAsync("LHLO client.test")); // the last line of the LHLO reply
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync("MAIL FROM:<a@example.org>"));
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync($"RCPT TO:<{TestAccounts.Alice}@{Domain}>"));
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync($"RCPT TO:<{TestAccounts.Bob}@{Domain}>"));
            Assert.StartsWith("550 5.1.1 ", await session.CommandAsync($"RCPT TO:<nobody-here@{Domain}>"), StringComparison.Ordinal);
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync($"RCPT TO:<{TestAccounts.Carol}@{Domain}>"));
            Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
            await session.SendAsync(Message("three@test") + ".");
            var replies = new[] { await session.ReadReplyAsync(), await session.ReadReplyAsync(), await session.ReadReplyAsync() };
            Assert.StartsWith("250 2.0.0 Ok: queued as ", replies[0], StringComparison.Ordinal);
            Assert.Equal($"552 5.2.2 Mailbox {TestAccounts.Bob} is full", replies[1]);
            Assert.StartsWith("250 2.0.0 Ok: queued as ", replies[2], StringComparison.Ordinal);
            Assert.Equal("250 2.0.0 Ok", await session.CommandAsync("NOOP")); // in step: exactly three replies came
        }

        var alice = Assert.Single(await MessagesAsync(s.AliceMailbox));
        Assert.Equal("<three@test>", alice.MessageId);
        Assert.Contains("(local socket)\n\tby bridge.localhost (Bridge) with LMTP id ", await File.ReadAllTextAsync(s.AliceMailbox), StringComparison.Ordinal);
        Assert.Equal("<three@test>", Assert.Single(await MessagesAsync(s.Spool[TestAccounts.Carol])).MessageId);
        Assert.Equal(FullMailbox, await File.ReadAllBytesAsync(s.BobMailbox));
        _ = carol;
    }

    [Fact]
    public async Task Postfix_over_lmtp_unix_delivers_two_and_bounces_the_recipient_whose_mailbox_is_over_its_limit()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Carol);
        await using var postfix = await PostfixServer.StartLmtpClientAsync(Domain);
        var socket = Path.Combine(postfix.QueueDirectory, "private", "bridge-lmtp");
        await using var s = await SpoolScenario.StartAsync($"Bridge:Lmtp:Socket={socket}", "Bridge:Lmtp:SocketGroup=postfix",
            "Bridge:Spool:MaxMailboxBytes=4000");
        SpoolScenario.CreateMailbox(s.BobMailbox, FullMailbox, s.BobIds.Uid, s.BobIds.Gid);

        var to = string.Join(',', new[] { TestAccounts.Alice, TestAccounts.Bob, TestAccounts.Carol }.Select(u => $"{u}@{Domain}"));
        var sent = await Swaks.SendAsync(postfix.SmtpPort, to, extra: ["--header", "Message-Id: <postfix-lmtp@test>"]);
        Assert.StartsWith("250 ", sent.FinalReply, StringComparison.Ordinal);

        await Eventually.WaitAsync(() => StatusLines(postfix.Log).Count >= 3, 60, () => postfix.Log);
        var statuses = StatusLines(postfix.Log);
        Assert.True(statuses.Count == 3, string.Join('\n', statuses));
        Assert.Contains(statuses, l => l.Contains($"to=<{TestAccounts.Alice}@{Domain}>", StringComparison.Ordinal) && l.Contains("status=sent (250 2.0.0 Ok: queued as ", StringComparison.Ordinal));
        Assert.Contains(statuses, l => l.Contains($"to=<{TestAccounts.Carol}@{Domain}>", StringComparison.Ordinal) && l.Contains("status=sent (250 2.0.0 Ok: queued as ", StringComparison.Ordinal));
        Assert.Contains(statuses, l => l.Contains($"to=<{TestAccounts.Bob}@{Domain}>", StringComparison.Ordinal) &&
            l.Contains($"status=bounced (host mta.test[private/bridge-lmtp] said: 552 5.2.2 Mailbox {TestAccounts.Bob} is full", StringComparison.Ordinal));
        Assert.All(statuses, l => Assert.Contains("relay=mta.test[private/bridge-lmtp]", l, StringComparison.Ordinal));
        Assert.Equal("<postfix-lmtp@test>", Assert.Single(await MessagesAsync(s.AliceMailbox)).MessageId);
        Assert.Equal("<postfix-lmtp@test>", Assert.Single(await MessagesAsync(s.Spool[TestAccounts.Carol])).MessageId);
        Assert.Equal(FullMailbox, await File.ReadAllBytesAsync(s.BobMailbox));
    }

    [Fact]
    public async Task In_legacy_mode_the_stores_reply_for_each_recipient_reaches_postfix_for_that_recipient()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Carol);
        await using var postfix = await PostfixServer.StartLmtpClientAsync(Domain);
        var socket = Path.Combine(postfix.QueueDirectory, "private", "bridge-lmtp");
        // The store (Dovecot LMTP) knows alice and bob only: it refuses carol at RCPT.
        await using var legacy = await LegacyScenario.StartAsync(true, $"Bridge:Lmtp:Socket={socket}", "Bridge:Lmtp:SocketGroup=postfix");

        var to = string.Join(',', new[] { TestAccounts.Alice, TestAccounts.Carol, TestAccounts.Bob }.Select(u => $"{u}@{Domain}"));
        Assert.StartsWith("250 ", (await Swaks.SendAsync(postfix.SmtpPort, to, extra: ["--header", "Message-Id: <legacy-lmtp@test>"])).FinalReply,
            StringComparison.Ordinal);

        await Eventually.WaitAsync(() => StatusLines(postfix.Log).Count >= 3, 60, () => postfix.Log);
        var statuses = StatusLines(postfix.Log);
        Assert.True(statuses.Count == 3, string.Join('\n', statuses));
        Assert.Equal(2, statuses.Count(l => l.Contains("status=sent (250 ", StringComparison.Ordinal)));
        Assert.Contains(statuses, l => l.Contains($"to=<{TestAccounts.Carol}@{Domain}>", StringComparison.Ordinal) &&
            l.Contains("status=bounced (host mta.test[private/bridge-lmtp] said: 550 5.1.1 ", StringComparison.Ordinal));
        Assert.Single(await legacy.InboxAsync(TestAccounts.Alice));
        Assert.Single(await legacy.InboxAsync(TestAccounts.Bob));
    }

    /// <summary>Found by the soak (tests/Bridge.Soak): over LMTP an alias's members share one RCPT and one reply. A member
    /// whose spool fails for now makes that reply 4xx, and the client sends the RCPT again: the members already in the
    /// store must not have been delivered yet, or they get the message twice.</summary>
    [Fact]
    public async Task An_alias_whose_spool_member_is_deferred_holds_back_its_store_members_so_the_retry_delivers_each_once()
    {
        using var sockets = new TempDir("bridge-lmtp");
        var socket = sockets["lmtp"];
        await File.WriteAllTextAsync(sockets["aliases"], $"pair: {TestAccounts.Alice}, {TestAccounts.Bob}\n");
        await using var legacy = await LegacyScenario.StartAsync(true, $"Bridge:Lmtp:Socket={socket}", "Bridge:Users:1:Mode=Spool",
            $"Bridge:AliasFiles:0={sockets["aliases"]}", "Bridge:Spool:MaxMailboxBytes=4000", "Bridge:Spool:QuotaExceeded=Defer");
        var bob = legacy.Bridge.BobMailbox;
        SpoolScenario.CreateMailbox(bob, FullMailbox, legacy.Bridge.BobIds.Uid, legacy.Bridge.BobIds.Gid);

        async Task<string> SendAsync()
        {
            var (session, _) = await RawSmtp.ConnectUnixAsync(socket);
            using (session)
            {
                await session.CommandAsync("LHLO client.test");
                Assert.Equal("250 2.0.0 Ok", await session.CommandAsync("MAIL FROM:<a@example.org>"));
                Assert.Equal("250 2.0.0 Ok", await session.CommandAsync($"RCPT TO:<pair@{Domain}>"));
                Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
                await session.SendAsync(Message("pair@test") + ".");
                return await session.ReadReplyAsync();
            }
        }

        Assert.StartsWith("452 4.2.2 ", await SendAsync(), StringComparison.Ordinal);
        Assert.Empty(await legacy.InboxAsync(TestAccounts.Alice)); // held back with the RCPT, not delivered ahead of the retry

        File.WriteAllBytes(bob, []); // room again: the client's retry delivers to both, each once
        Assert.StartsWith("250 ", await SendAsync(), StringComparison.Ordinal);
        Assert.Single(await legacy.InboxAsync(TestAccounts.Alice));
        Assert.Equal("<pair@test>", Assert.Single(await MessagesAsync(bob)).MessageId);
    }

    [Fact]
    public async Task Exim_delivers_over_the_socket_with_the_deploy_router_and_transport()
    {
        using var sockets = new TempDir("bridge-lmtp", TempDir.Mode("755"));
        var socket = sockets["lmtp"];
        await using var s = await SpoolScenario.StartAsync($"Bridge:Lmtp:Socket={socket}", "Bridge:Lmtp:SocketGroup=Debian-exim");
        using var exim = await EximServer.CreateLmtpAsync(socket);

        var result = await exim.SendAsync("sender@example.org", [$"{TestAccounts.Alice}@{Domain}", $"{TestAccounts.Bob}@{Domain}"], Message("exim-lmtp@test"));

        Assert.True(result.ExitCode == 0, result.Output + exim.MainLog);
        Assert.Contains("T=bridge_lmtp", exim.MainLog, StringComparison.Ordinal);
        Assert.Equal("<exim-lmtp@test>", Assert.Single(await MessagesAsync(s.AliceMailbox)).MessageId);
        Assert.Equal("<exim-lmtp@test>", Assert.Single(await MessagesAsync(s.BobMailbox)).MessageId);
    }

    [Fact]
    public async Task A_client_without_permission_on_the_socket_is_refused_by_the_file_system()
    {
        using var sockets = new TempDir("bridge-lmtp", TempDir.Mode("755"));
        var socket = sockets["lmtp"];
        await using var s = await SpoolScenario.StartAsync($"Bridge:Lmtp:Socket={socket}");

        var asNobody = await Proc.RunAsync("setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "/usr/bin/python3", "-c",
            $"import socket\ns = socket.socket(socket.AF_UNIX)\ntry:\n  s.connect({Proc.Quote(socket)})\n  print('connected', s.recv(100))\nexcept OSError as e:\n  print('refused', e.errno)"]);
        Assert.True(asNobody.Stdout.Trim() == "refused 13", asNobody.Output); // EACCES: mode 0660, group mail

        var (session, greeting) = await RawSmtp.ConnectUnixAsync(socket); // root, the MTA's side, is let in
        session.Dispose();
        Assert.StartsWith("220 ", greeting, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
    }

    [Fact]
    public async Task A_stale_socket_is_replaced_at_start_and_anything_else_at_the_path_stops_the_start()
    {
        using var dir = new TempDir("bridge-daemon");
        using var sockets = new TempDir("bridge-lmtp");
        var stale = sockets["stale"];
        using (var old = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            old.Bind(new UnixDomainSocketEndPoint(stale)); // bound, then closed without unlinking: what a killed daemon leaves
        }
        await using (var s = await SpoolScenario.StartAsync($"Bridge:Lmtp:Socket={stale}"))
        {
            var (session, greeting) = await RawSmtp.ConnectUnixAsync(stale);
            session.Dispose();
            Assert.Equal("220 bridge.localhost LMTP Bridge", greeting);
        }

        var file = sockets["file"];
        await File.WriteAllTextAsync(file, "not a socket");
        var result = await BridgeProcess.RunToExitAsync(dir, "--Bridge:Listen:Port=" + FreePort.Next(), $"--Bridge:Spool:Directory={dir.Path}",
            $"--Bridge:Spool:JournalDirectory={dir["journal"]}", $"--Bridge:Lmtp:Socket={file}");
        Assert.Equal(69, result.ExitCode);
        Assert.Contains($"cannot listen for LMTP on {file}: it exists and is not a socket", result.Output, StringComparison.Ordinal);
        Assert.Contains("Bridge:Lmtp:Socket", result.Output, StringComparison.Ordinal);
        Assert.Equal("not a socket", await File.ReadAllTextAsync(file));
    }

    [Theory]
    [MemberData(nameof(BadInputTests.Corpus), MemberType = typeof(BadInputTests))]
    public async Task The_bad_input_corpus_gets_the_same_replies_over_lmtp(string name, string[] lines, string reply)
    {
        using var sockets = new TempDir("bridge-lmtp");
        var socket = sockets["lmtp"];
        await using var s = await SpoolScenario.StartAsync($"Bridge:Lmtp:Socket={socket}");
        var (session, _) = await RawSmtp.ConnectUnixAsync(socket);
        var last = "";
        foreach (var line in lines)
        {
            last = await session.CommandAsync(line == "EHLO x" ? "LHLO x" : line);
        }
        session.Dispose();

        Assert.True(last.StartsWith(reply, StringComparison.Ordinal), $"{name}: got \"{last}\"");
        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
        var (again, _) = await RawSmtp.ConnectUnixAsync(socket);
        using (again)
        {
            await again.CommandAsync("LHLO x");
            await again.CommandAsync("MAIL FROM:<a@example.org>");
            await again.CommandAsync($"RCPT TO:<{TestAccounts.Alice}@{Domain}>");
            await again.CommandAsync("DATA");
            await again.SendAsync(Message("after@test") + ".");
            Assert.StartsWith("250 2.0.0 ", await again.ReadReplyAsync(), StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("bare LF in the body", "Subject: x\r\n\r\nline one\nline two\r\n")]
    [InlineData("bare LF dot LF smuggling", "Subject: x\r\n\r\nhello\n.\nMAIL FROM:<evil@example.org>\r\nmore\r\n")]
    public async Task Bare_lf_is_refused_for_every_recipient_over_lmtp(string name, string message)
    {
        using var sockets = new TempDir("bridge-lmtp");
        var socket = sockets["lmtp"];
        await using var s = await SpoolScenario.StartAsync($"Bridge:Lmtp:Socket={socket}");
        var (session, _) = await RawSmtp.ConnectUnixAsync(socket);
        using (session)
        {
            await session.CommandAsync("LHLO x");
            await session.CommandAsync("MAIL FROM:<a@example.org>");
            await session.CommandAsync($"RCPT TO:<{TestAccounts.Alice}@{Domain}>");
            await session.CommandAsync($"RCPT TO:<{TestAccounts.Bob}@{Domain}>");
            Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
            await session.SendAsync(message + ".");
            Assert.True((await session.ReadReplyAsync()).StartsWith("550 5.5.2 Bare <LF>", StringComparison.Ordinal), name);
            Assert.True((await session.ReadReplyAsync()).StartsWith("550 5.5.2 Bare <LF>", StringComparison.Ordinal), name);
            Assert.StartsWith("250 ", await session.CommandAsync("RSET"), StringComparison.Ordinal);
        }
        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
    }

    [GeneratedRegex(@"^.* postfix/lmtp\[\d+\]: \w+: to=<[^>]+>, .*status=\w+ .*$", RegexOptions.Multiline)]
    private static partial Regex StatusLine();

    private static List<string> StatusLines(string log) => [.. StatusLine().Matches(log).Select(m => m.Value)];
}
