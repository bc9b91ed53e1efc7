using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Tests.Routing;

/// <summary>Bridge:AliasFiles end to end: swaks to an alias, each member's mailbox (read by a real Dovecot), an edit
/// taking effect without a restart, an undeliverable alias refused at RCPT, and what `check` and `resolve` say.</summary>
public class AliasDeliveryTests
{
    private const string Domain = SpoolScenario.Domain;

    [Fact]
    public async Task Mail_to_an_alias_reaches_each_member_once_and_an_edit_counts_at_once()
    {
        using var etc = new TempDir("bridge-aliases");
        var list = etc["team.list"];
        await File.WriteAllTextAsync(list, $"{TestAccounts.Bob}\n");
        var aliases = etc["aliases"];
        await File.WriteAllTextAsync(aliases, $"""
            # as in /etc/aliases
            team: {TestAccounts.Alice},
              :include:{list},
              staff
            staff: {TestAccounts.Bob}@{Domain}
            pipe: "|/usr/bin/procmail"
            """);
        await using var s = await SpoolScenario.StartAsync($"Bridge:AliasFiles:0={aliases}");

        var sent = await Swaks.SendAsync(s.Port, $"team@{Domain}", extra: ["--header", "Message-Id: <team-1@test>"]);
        Assert.StartsWith("250 2.0.0 ", sent.FinalReply, StringComparison.Ordinal);
        var alice = Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        var bob = Assert.Single(await MboxReaders.PythonMailboxAsync(s.BobMailbox)); // bob twice in the alias: one copy
        Assert.Equal(($"team@{Domain}", $"{TestAccounts.Alice}@{Domain}"), (alice.OriginalTo, alice.DeliveredTo));
        Assert.Equal(($"team@{Domain}", $"{TestAccounts.Bob}@{Domain}"), (bob.OriginalTo, bob.DeliveredTo));

        var pipe = await Swaks.SendAsync(s.Port, $"pipe@{Domain}");
        Assert.StartsWith($"550 5.3.5 <pipe@afp548.test>: alias pipe expands to a command ({aliases}:6), which Bridge cannot deliver", pipe.FinalReply,
            StringComparison.Ordinal);
        Assert.DoesNotContain("procmail", pipe.Transcript, StringComparison.Ordinal); // the reply names the alias and file:line, not what the file says
        Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains($"aliases: {aliases}:6: alias pipe: a target is a command", StringComparison.Ordinal));

        // An edit of the file counts for the next RCPT, without newaliases, a reload or a restart.
        await File.WriteAllTextAsync(aliases, $"team: {TestAccounts.Alice}\n");
        File.SetLastWriteTimeUtc(aliases, DateTime.UtcNow.AddSeconds(2));
        await Task.Delay(1100);
        Assert.StartsWith("250 2.0.0 ", (await Swaks.SendAsync(s.Port, $"team@{Domain}", extra: ["--header", "Message-Id: <team-2@test>"])).FinalReply,
            StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).Count);
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.BobMailbox));
        Assert.StartsWith("550 5.1.1 ", (await Swaks.SendAsync(s.Port, $"staff@{Domain}")).FinalReply, StringComparison.Ordinal);

        await using var dovecot = await DovecotServer.StartMboxReaderAsync(s.Spool.Path, TestAccounts.Alice, TestAccounts.Bob);
        Assert.Equal(2, (await dovecot.FetchInboxAsync(TestAccounts.Alice)).Count);
        var bobs = Encoding.UTF8.GetString(Assert.Single(await dovecot.FetchInboxAsync(TestAccounts.Bob)));
        Assert.Contains("Message-Id: <team-1@test>", bobs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task In_legacy_mode_the_store_is_given_each_members_address_once()
    {
        using var etc = new TempDir("bridge-aliases");
        await File.WriteAllTextAsync(etc["aliases"], $"team: {TestAccounts.Alice}, {TestAccounts.Bob}\n");
        await using var legacy = await LegacyScenario.StartAsync(true, $"Bridge:AliasFiles:0={etc["aliases"]}");

        // The alias and one of its members directly: the member's address reaches the store once.
        var sent = await Swaks.SendAsync(legacy.Port, $"team@{Domain},{TestAccounts.Alice}@{Domain}", extra: ["--header", "Message-Id: <legacy-team@test>"]);

        Assert.StartsWith("250 2.0.0 ", sent.FinalReply, StringComparison.Ordinal);
        Assert.Single(await legacy.InboxAsync(TestAccounts.Alice));
        Assert.Single(await legacy.InboxAsync(TestAccounts.Bob));
    }

    [Fact]
    public async Task Check_lists_what_bridge_cannot_deliver_with_file_and_line_and_resolve_shows_the_expansion()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        await TestAccounts.EnsureAsync(TestAccounts.Bob);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var aliases = dir["aliases"];
        await File.WriteAllTextAsync(aliases, $"team: {TestAccounts.Alice}, {TestAccounts.Bob}\nlog: /var/log/mail.copy\nloop1: loop2\nloop2: loop1\n");
        string[] settings = [$"--Bridge:Spool:Directory={spool.Path}", $"--Bridge:Spool:JournalDirectory={dir["journal"]}",
            $"--Bridge:LocalDomains:0={Domain}", $"--Bridge:AliasFiles:0={aliases}"];

        var check = await BridgeProcess.RunToExitAsync(dir, ["check", .. settings]);
        var lines = check.Stdout.Split('\n').Where(l => l.Contains($" aliases {aliases}", StringComparison.Ordinal)).ToList();
        Assert.Contains(lines, l => l.StartsWith("WARN ", StringComparison.Ordinal) &&
            l.Contains($"{aliases}:2: alias log: a target is a file, which Bridge cannot deliver; mail to log is refused at RCPT: /var/log/mail.copy", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("WARN ", StringComparison.Ordinal) && l.Contains($"mail to loop1@{Domain} is refused: 554 5.4.6", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("OK ", StringComparison.Ordinal) && l.Contains("4 aliases read", StringComparison.Ordinal));

        var resolve = await BridgeProcess.RunToExitAsync(dir, ["resolve", $"team@{Domain}", $"log@{Domain}", .. settings]);
        Assert.Equal(1, resolve.ExitCode);
        Assert.Contains($"team@{Domain}: 250 2.1.5 accepted", resolve.Stdout, StringComparison.Ordinal);
        Assert.Contains($"  alias:   team ({aliases}:1) -> {TestAccounts.Alice}, {TestAccounts.Bob}", resolve.Stdout, StringComparison.Ordinal);
        Assert.Contains($"  headers: X-Original-To: team@{Domain}, Delivered-To: {TestAccounts.Bob}@{Domain}", resolve.Stdout, StringComparison.Ordinal);
        Assert.Contains($"log@{Domain}: 550 5.3.5 ", resolve.Stdout, StringComparison.Ordinal);
    }
}
