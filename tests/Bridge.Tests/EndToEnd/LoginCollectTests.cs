using System.Diagnostics;
using Bridge.Tests.Support;

namespace Bridge.Tests.EndToEnd;

/// <summary>The note's "new way" at login: mail waits in /var/mail/&lt;first short name&gt; (spooled while the user was in
/// Spool mode, or while the store was down), and when the user logs in over IMAP or POP3 to a real Dovecot (Maildir
/// store), deploy/dovecot/30-bridge-collect.conf's post-login client (src/Bridge.DovecotCollect, published with Native
/// AOT as the package ships it) asks the running daemon over its collect socket to move the waiting mail first.</summary>
public class LoginCollectTests
{
    private const string Domain = SpoolScenario.Domain;

    private sealed class Setup : IAsyncDisposable
    {
        public required TempDir Root { get; init; }
        public required SpoolScenario Spooler { get; init; }
        public required DovecotServer Dovecot { get; init; }
        public BridgeServer? Daemon { get; set; }
        public required string[] DaemonSettings { get; init; }

        public string Mailbox => Spooler.AliceMailbox;

        public string Socket => Root["collect"];

        public async Task StartDaemonAsync() => Daemon = await BridgeServer.StartAsync(Spooler.Spool.Path, Root.Path, DaemonSettings);

        public async Task StopDaemonAsync()
        {
            if (Daemon is not null)
            {
                await Daemon.DisposeAsync();
                Daemon = null;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await StopDaemonAsync();
            await Dovecot.DisposeAsync();
            await Spooler.DisposeAsync();
            Root.Dispose();
        }
    }

    /// <summary>The spool's writer (a Bridge in Spool mode: what the MTA delivered to), the store (Dovecot, logins through the
    /// shipped post-login configuration) and the daemon that collects (Legacy mode, the store's LMTP, a collect socket).</summary>
    private static async Task<Setup> StartAsync(params string[] extra)
    {
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        var root = new TempDir("bridge-collect", TempDir.Mode("755"));
        var spooler = await SpoolScenario.StartAsync();
        var script = await DovecotCollectClient.ScriptAsync(root, root["collect"]);
        var dovecot = await DovecotServer.StartStoreWithLoginCollectAsync(script,
            [("alice", TestAccounts.Alice), ($"{TestAccounts.Alice}@{Domain}", TestAccounts.Alice)], TestAccounts.Alice);
        string[] settings = [$"Bridge:LocalDomains:0={Domain}", "Bridge:Mode=Legacy",
            $"Bridge:Users:0:ShortNames:0={TestAccounts.Alice}", "Bridge:Users:0:ShortNames:1=alice", $"Bridge:Users:0:ShortNames:2=alice@{Domain}",
            "Bridge:Legacy:Host=127.0.0.1", $"Bridge:Legacy:Port={dovecot.LmtpPort}", $"Bridge:Collect:Socket={root["collect"]}", .. extra];
        var setup = new Setup { Root = root, Spooler = spooler, Dovecot = dovecot, DaemonSettings = settings };
        await setup.StartDaemonAsync();
        return setup;
    }

    private static async Task SpoolAsync(Setup s, string id) =>
        Assert.StartsWith("250 ", (await Swaks.SendAsync(s.Spooler.Port, $"{TestAccounts.Alice}@{Domain}", extra: ["--header", $"Message-Id: <{id}>"])).FinalReply,
            StringComparison.Ordinal);

    /// <summary>Logs in (IMAP or POP3, python's imaplib/poplib) and returns the Message-Ids the INBOX shows.</summary>
    private static async Task<List<string>> LoginAsync(Setup s, string protocol, string login)
    {
        var script = protocol == "imap"
            ? $"""
              import imaplib, re
              m = imaplib.IMAP4('127.0.0.1', {s.Dovecot.ImapPort})
              m.login('{login}', '{DovecotServer.Password}')
              m.select('INBOX')
              for n in m.search(None, 'ALL')[1][0].split():
                  h = m.fetch(n, '(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])')[1][0][1].decode()
                  print(re.search(r'<([^>]*)>', h).group(1))
              m.logout()
              """
            : $"""
              import poplib, re
              p = poplib.POP3('127.0.0.1', {s.Dovecot.Pop3Port})
              p.user('{login}')
              p.pass_('{DovecotServer.Password}')
              for i in range(1, p.stat()[0] + 1):
                  h = b'\n'.join(p.top(i, 0)[1]).decode()
                  print(re.search(r'(?im)^message-id: *<([^>]*)>', h).group(1))
              p.quit()
              """;
        var result = await Proc.RunAsync("python3", ["-c", script]);
        Assert.True(result.ExitCode == 0, result.Output + s.Dovecot.Log);
        return [.. result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
    }

    [Fact]
    public async Task Spooled_mail_is_in_the_inbox_at_the_first_imap_login_and_the_spool_is_empty()
    {
        await using var s = await StartAsync();
        for (var i = 0; i < 3; i++)
        {
            await SpoolAsync(s, $"imap-{i}@test");
        }

        var seen = await LoginAsync(s, "imap", TestAccounts.Alice);
        Assert.True(seen.Count == 3, s.Dovecot.Log + string.Join('\n', s.Daemon!.Logs.Lines));
        Assert.Equal(["imap-0@test", "imap-1@test", "imap-2@test"], seen);
        Assert.Equal(0, new FileInfo(s.Mailbox).Length);
        Assert.Contains(s.Daemon!.Logs.Lines, l => l.Contains($"drain {TestAccounts.Alice}: 3 relayed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_pop3_login_with_a_secondary_short_name_collects_the_first_short_names_spool()
    {
        await using var s = await StartAsync();
        await SpoolAsync(s, "pop-0@test");
        await SpoolAsync(s, "pop-1@test");

        Assert.Equal(["pop-0@test", "pop-1@test"], await LoginAsync(s, "pop3", "alice")); // "alice" is bridgetest1's second short name
        Assert.Equal(0, new FileInfo(s.Mailbox).Length);
    }

    [Fact]
    public async Task An_imap_login_with_the_full_address_collects_the_first_short_names_spool()
    {
        await using var s = await StartAsync();
        await SpoolAsync(s, "address-0@test");

        // bridgetest1@afp548.test is no configured short name: the address of the first short name at a local domain.
        Assert.Equal(["address-0@test"], await LoginAsync(s, "imap", $"{TestAccounts.Alice}@{Domain}"));
        Assert.Equal(0, new FileInfo(s.Mailbox).Length);
    }

    [Fact]
    public async Task Deliveries_racing_with_logins_are_neither_lost_nor_duplicated()
    {
        await using var s = await StartAsync();
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < 15; i++)
            {
                await SpoolAsync(s, $"race-{i}@test");
            }
        });
        while (!sending.IsCompleted)
        {
            await LoginAsync(s, "imap", TestAccounts.Alice);
        }
        await sending;

        var seen = await LoginAsync(s, "imap", TestAccounts.Alice); // the last login collects what came after the others
        Assert.Equal(Enumerable.Range(0, 15).Select(i => $"race-{i}@test").Order(StringComparer.Ordinal), seen.Order(StringComparer.Ordinal));
        Assert.Equal(0, new FileInfo(s.Mailbox).Length);
    }

    [Fact]
    public async Task Logins_of_one_user_at_once_move_each_message_exactly_once()
    {
        await using var s = await StartAsync();
        for (var i = 0; i < 20; i++)
        {
            await SpoolAsync(s, $"together-{i}@test");
        }

        var logins = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => LoginAsync(s, i % 2 == 0 ? "imap" : "pop3", i % 3 == 0 ? "alice" : TestAccounts.Alice)));

        var expected = Enumerable.Range(0, 20).Select(i => $"together-{i}@test").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, (await LoginAsync(s, "imap", TestAccounts.Alice)).Order(StringComparer.Ordinal)); // each once in the store
        Assert.All(logins, seen => Assert.Equal(20, seen.Count)); // each waited for the one collection, none for a second round
        Assert.Equal(0, new FileInfo(s.Mailbox).Length);
    }

    [Fact]
    public async Task With_the_daemon_stopped_the_login_goes_on_at_once_and_the_mail_is_collected_later()
    {
        await using var s = await StartAsync();
        await SpoolAsync(s, "later-0@test");
        await s.StopDaemonAsync();

        var clock = Stopwatch.StartNew();
        Assert.Empty(await LoginAsync(s, "imap", TestAccounts.Alice)); // no socket: nothing moved, the session opens
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the login took {clock.Elapsed}");
        Assert.Contains("does not exist (is Bridge running?", s.Dovecot.Log, StringComparison.Ordinal);

        await s.StartDaemonAsync();
        Assert.Equal(["later-0@test"], await LoginAsync(s, "imap", TestAccounts.Alice));
    }

    [Fact]
    public async Task A_mailbox_locked_for_long_lets_the_login_go_on_and_says_why()
    {
        await using var s = await StartAsync();
        await SpoolAsync(s, "locked-0@test");
        using (await LockHolder.FcntlAsync(s.Mailbox, 30))
        {
            var clock = Stopwatch.StartNew();
            await LoginAsync(s, "imap", TestAccounts.Alice);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the login took {clock.Elapsed}");
        }
        Assert.Contains(s.Daemon!.Logs.Lines, l => l.Contains($"drain {TestAccounts.Alice}: left alone", StringComparison.Ordinal));
        Assert.Equal(["locked-0@test"], await LoginAsync(s, "imap", TestAccounts.Alice)); // unlocked: the next login takes it
    }

    [Fact]
    public async Task A_store_that_is_down_lets_the_login_go_on_at_once_and_the_mail_stays_in_the_spool()
    {
        await using var s = await StartAsync($"Bridge:Legacy:Port={FreePort.Next()}"); // nothing listens there
        await SpoolAsync(s, "down-0@test");

        var clock = Stopwatch.StartNew();
        Assert.Empty(await LoginAsync(s, "imap", TestAccounts.Alice));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the login took {clock.Elapsed}");
        Assert.Contains(s.Daemon!.Logs.Lines, l => l.Contains($"drain {TestAccounts.Alice}: store ", StringComparison.Ordinal) &&
            l.Contains("the rest stays in the spool", StringComparison.Ordinal));
        Assert.Equal(["down-0@test"], (await MboxReaders.PythonMailboxAsync(s.Mailbox)).Select(m => m.MessageId?.Trim('<', '>')));
    }

    [Fact]
    public async Task Collection_stops_at_its_time_limit_and_leaves_the_rest_for_the_next_login()
    {
        await using var spool = await SpoolScenario.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            Assert.StartsWith("250 ", (await Swaks.SendAsync(spool.Port, $"{TestAccounts.Alice}@{Domain}")).FinalReply, StringComparison.Ordinal);
        }
        using var slowStore = await SmtpSink.StartAsync("-w", "2"); // two seconds for every message
        using var dir = new TempDir("bridge-daemon");

        // `mailbridge collect --user LOGIN`, the same collection by hand (what the daemon's socket runs).
        var result = await BridgeProcess.RunToExitAsync(dir, ["collect", "--user", "alice", $"--Bridge:Spool:Directory={spool.Spool.Path}",
            $"--Bridge:Spool:JournalDirectory={dir["journal"]}", $"--Bridge:LocalDomains:0={Domain}",
            $"--Bridge:Users:0:ShortNames:0={TestAccounts.Alice}", "--Bridge:Users:0:ShortNames:1=alice",
            "--Bridge:Mode=Legacy", "--Bridge:Legacy:Host=127.0.0.1", $"--Bridge:Legacy:Port={slowStore.Port}", "--Bridge:Legacy:Protocol=Smtp",
            "--Bridge:Legacy:LoginCollectTimeout=00:00:01"]);

        Assert.Equal(0, result.ExitCode);
        Assert.Contains($"drain {TestAccounts.Alice}: 1 relayed", result.Stdout, StringComparison.Ordinal); // the one begun in time
        Assert.Contains($"collect alice: Bridge:Legacy:LoginCollectTimeout (1 s) is up; the rest of {spool.AliceMailbox} stays for the next login",
            result.Stdout, StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(spool.AliceMailbox)).Count);
        Assert.Equal(1, slowStore.Received);
    }
}
