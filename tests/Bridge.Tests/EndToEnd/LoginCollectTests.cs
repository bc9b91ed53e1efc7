using Bridge.Tests.Support;

namespace Bridge.Tests.EndToEnd;

/// <summary>The note's "new way": the MTA spools to /var/mail/&lt;first short name&gt; (Bridge in Spool mode here), and when the
/// user logs in over IMAP or POP3 to a real Dovecot (Maildir store), the post-login script of
/// deploy/dovecot/30-bridge-collect.conf has `bridge collect` move the waiting mail into the store first.</summary>
public class LoginCollectTests
{
    private const string Domain = SpoolScenario.Domain;

    private sealed class Setup : IAsyncDisposable
    {
        public required TempDir Root { get; init; }
        public required TempDir Spool { get; init; }
        public required DovecotServer Dovecot { get; init; }
        public required BridgeServer Bridge { get; init; }

        public string Mailbox => Spool[TestAccounts.Alice];

        public async ValueTask DisposeAsync()
        {
            await Bridge.DisposeAsync();
            await Dovecot.DisposeAsync();
            Spool.Dispose();
            Root.Dispose();
        }
    }

    private static async Task<Setup> StartAsync(string extraSettings = "")
    {
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        var root = new TempDir("bridge-collect", TempDir.Mode("755"));
        var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        // The deploy script as shipped; MAILBRIDGE points it at this build, run in a folder with its appsettings.json.
        var dll = BridgeProcess.CopyDaemon(root);
        var dotnet = Environment.ProcessPath!.EndsWith("dotnet", StringComparison.Ordinal) ? Environment.ProcessPath : "/usr/bin/dotnet";
        await File.WriteAllTextAsync(root["mailbridge"], $"#!/bin/sh\ncd {Proc.Quote(root.Path)} && HOME={Proc.Quote(root.Path)} exec {dotnet} {Proc.Quote(dll)} \"$@\"\n");
        File.Copy(Path.Combine(AppContext.BaseDirectory, "deploy", "dovecot", "bridge-collect"), root["bridge-collect"]);
        await File.WriteAllTextAsync(root["post-login"], $"#!/bin/sh\nMAILBRIDGE={Proc.Quote(root["mailbridge"])} exec {Proc.Quote(root["bridge-collect"])} \"$@\"\n");
        foreach (var script in new[] { "mailbridge", "bridge-collect", "post-login" })
        {
            File.SetUnixFileMode(root[script], TempDir.Mode("755"));
        }
        var dovecot = await DovecotServer.StartStoreWithLoginCollectAsync(root["post-login"], [("alice", TestAccounts.Alice)], TestAccounts.Alice);
        await File.WriteAllTextAsync(root["appsettings.json"], $$"""
            { "Bridge": {
                "Mode": "Legacy",
                "LocalDomains": [ "{{Domain}}" ],
                "Users": [ { "ShortNames": [ "{{TestAccounts.Alice}}", "alice" ] } ],
                "Spool": { "Directory": "{{spool.Path}}", "JournalDirectory": "{{root["journal"]}}" },
                "Legacy": { "Host": "127.0.0.1", "Port": {{dovecot.LmtpPort}}, "Protocol": "Lmtp" {{extraSettings}} } } }
            """);
        // The daemon here spools (as while the store was down, or before the switch to Legacy mode); `collect` reads the file: Legacy.
        var bridge = await BridgeServer.StartAsync(spool.Path, root.Path, "Bridge:Mode=Spool");
        return new Setup { Root = root, Spool = spool, Dovecot = dovecot, Bridge = bridge };
    }

    private static async Task SpoolAsync(Setup s, string id) =>
        Assert.StartsWith("250 ", (await Swaks.SendAsync(s.Bridge.Port, $"{TestAccounts.Alice}@{Domain}", extra: ["--header", $"Message-Id: <{id}>"])).FinalReply,
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
        Assert.True(seen.Count == 3, s.Dovecot.Log);
        Assert.Equal(["imap-0@test", "imap-1@test", "imap-2@test"], seen);
        Assert.Equal(0, new FileInfo(s.Mailbox).Length);
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
    public async Task Collection_stops_at_its_time_limit_and_leaves_the_rest_for_the_next_login()
    {
        await using var spool = await SpoolScenario.StartAsync();
        for (var i = 0; i < 3; i++)
        {
            Assert.StartsWith("250 ", (await Swaks.SendAsync(spool.Port, $"{TestAccounts.Alice}@{Domain}")).FinalReply, StringComparison.Ordinal);
        }
        using var slowStore = await SmtpSink.StartAsync("-w", "2"); // two seconds for every message
        using var dir = new TempDir("bridge-daemon");

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
