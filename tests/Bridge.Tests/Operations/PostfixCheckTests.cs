using Bridge.Tests.Support;

namespace Bridge.Tests.Operations;

/// <summary>`mailbridge check` reading a real Postfix configuration with postconf (a private main.cf made from Debian's,
/// selected with MAIL_CONFIG as postconf itself does): configured well, and with each mistake that keeps mail from
/// Bridge or bounces it, each with the setting to change.</summary>
public class PostfixCheckTests
{
    private const string Domain = SpoolScenario.Domain;

    /// <summary>A Postfix configuration directory as Debian installs it (main.cf from its template, master.cf).</summary>
    private static string NewPostfixConfiguration(TempDir dir)
    {
        var conf = dir.CreateSubdirectory("postfix");
        File.Copy("/usr/share/postfix/main.cf.debian", Path.Combine(conf, "main.cf"));
        File.Copy("/usr/share/postfix/master.cf.dist", Path.Combine(conf, "master.cf"));
        return conf;
    }

    private static async Task<ProcResult> CheckAsync(int port, params string[] postfixSettings)
    {
        using var dir = new TempDir("bridge-daemon");
        return await CheckAsync(dir, NewPostfixConfiguration(dir), port, postfixSettings);
    }

    private static async Task<ProcResult> CheckAsync(TempDir dir, string conf, int port, params string[] postfixSettings)
    {
        Peers.RequireRoot();
        var postconf = Peers.Require("postconf", "postfix");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        // The deploy snippet as an admin pastes it, with Bridge's port, then the setting under test.
        string[] snippet = [.. File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "deploy", "postfix", "main.cf.snippet"))
            .Where(l => l.Contains('=', StringComparison.Ordinal) && !l.TrimStart().StartsWith('#'))
            .Select(l => l.Replace("127.0.0.1]:627", $"127.0.0.1]:{port}", StringComparison.Ordinal))];
        var edit = await Proc.RunAsync(postconf, ["-c", conf, "-e", "mydestination = mta.test, localhost", .. snippet, .. postfixSettings]);
        Assert.True(edit.ExitCode == 0, edit.Output);
        return await BridgeProcess.RunToExitAsync(dir, new Dictionary<string, string> { ["MAIL_CONFIG"] = conf },
            ["check", "--dovecot-config", DoveconfFile.Write(dir, spool.Path), $"--Bridge:Spool:Directory={spool.Path}", $"--Bridge:Spool:JournalDirectory={dir["journal"]}", $"--Bridge:Listen:Port={port}",
             $"--Bridge:LocalDomains:0={Domain}", "--Bridge:MaxMessageBytes=10240000"]);
    }

    private static string[] PostfixLines(ProcResult result) =>
        [.. result.Stdout.Split('\n').Where(l => l.Contains(" postfix ", StringComparison.Ordinal))];

    [Fact]
    public async Task A_postfix_configured_from_the_deploy_snippet_is_all_ok()
    {
        var port = FreePort.Next();
        var result = await CheckAsync(port);

        var lines = PostfixLines(result);
        Assert.Contains(lines, l => l.StartsWith("OK ", StringComparison.Ordinal) && l.Contains($"mail for {Domain} goes to Bridge (relayhost = [127.0.0.1]:{port})", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("OK ", StringComparison.Ordinal) && l.Contains("smtp_destination_recipient_limit = 1", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("OK ", StringComparison.Ordinal) && l.Contains("message_size_limit = 10240000 is within", StringComparison.Ordinal));
        Assert.All(lines, l => Assert.StartsWith("OK ", l, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_transport_maps_entry_for_the_domain_counts_as_routed_to_bridge()
    {
        var port = FreePort.Next();
        using var dir = new TempDir("bridge-daemon");
        var conf = NewPostfixConfiguration(dir);
        var map = Path.Combine(conf, "transport");
        await File.WriteAllTextAsync(map, $"{Domain} smtp:[127.0.0.1]:{port}\n");
        var postmap = await Proc.RunAsync(Peers.Require("postmap", "postfix"), ["-c", conf, $"hash:{map}"]);
        Assert.True(postmap.ExitCode == 0, postmap.Output);

        var result = await CheckAsync(dir, conf, port, "relayhost =", $"transport_maps = hash:{map}");

        Assert.Contains(PostfixLines(result), l => l.StartsWith("OK ", StringComparison.Ordinal)
            && l.Contains($"mail for {Domain} goes to Bridge (transport_maps = smtp:[127.0.0.1]:{port})", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("1", "OK")]
    [InlineData("", "WARN")]
    public async Task A_transport_of_its_own_for_bridge_needs_its_own_recipient_limit(string limit, string level)
    {
        var port = FreePort.Next();
        using var dir = new TempDir("bridge-daemon");
        var conf = NewPostfixConfiguration(dir);
        await File.AppendAllTextAsync(Path.Combine(conf, "master.cf"), "bridge    unix  -       -       y       -       -       smtp\n");
        var map = Path.Combine(conf, "transport");
        await File.WriteAllTextAsync(map, $"{Domain} bridge:[127.0.0.1]:{port}\n");
        var postmap = await Proc.RunAsync(Peers.Require("postmap", "postfix"), ["-c", conf, $"hash:{map}"]);
        Assert.True(postmap.ExitCode == 0, postmap.Output);

        var result = await CheckAsync(dir, conf, port, [$"transport_maps = hash:{map}", .. limit.Length > 0 ? [$"bridge_destination_recipient_limit = {limit}"] : Array.Empty<string>()]);

        var lines = PostfixLines(result);
        Assert.Contains(lines, l => l.StartsWith("OK ", StringComparison.Ordinal) && l.Contains($"goes to Bridge (transport_maps = bridge:[127.0.0.1]:{port})", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith(level + " ", StringComparison.Ordinal) && l.Contains($"bridge_destination_recipient_limit = {(limit.Length > 0 ? limit : "50")}", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("relayhost =", "FAIL", "mail for afp548.test does not reach Bridge's listener [127.0.0.1]:PORT: relayhost is ''", "-e 'relayhost = [127.0.0.1]:PORT'")]
    [InlineData("relayhost = [127.0.0.1]:25", "FAIL", "relayhost is '[127.0.0.1]:25'", "-e 'relayhost = [127.0.0.1]:PORT'")]
    [InlineData("mydestination = mta.test, afp548.test", "FAIL", "afp548.test is in mydestination or virtual_mailbox_domains: Postfix delivers its mail itself and Bridge never sees it", "remove afp548.test from mydestination")]
    [InlineData("virtual_mailbox_domains = afp548.test", "FAIL", "afp548.test is in mydestination or virtual_mailbox_domains", "remove afp548.test from mydestination / virtual_mailbox_domains")]
    [InlineData("smtp_destination_recipient_limit = 50", "WARN", "smtp_destination_recipient_limit = 50: a deferral of one recipient", "-e 'smtp_destination_recipient_limit = 1'")]
    [InlineData("message_size_limit = 52428800", "FAIL", "message_size_limit = 52428800 is above Bridge:MaxMessageBytes = 10240000", "-e 'message_size_limit = 10240000'")]
    [InlineData("message_size_limit = 0", "FAIL", "message_size_limit = 0 is above Bridge:MaxMessageBytes", "message_size_limit = 10240000")]
    public async Task Each_mistake_is_named_with_the_setting_to_change(string mistake, string level, string text, string fix)
    {
        var port = FreePort.Next();
        var result = await CheckAsync(port, mistake);

        var line = Assert.Single(PostfixLines(result), l => l.Contains(text.Replace("PORT", $"{port}", StringComparison.Ordinal), StringComparison.Ordinal));
        Assert.StartsWith(level + " ", line, StringComparison.Ordinal);
        Assert.Contains(" -- fix: ", line, StringComparison.Ordinal);
        Assert.Contains(fix.Replace("PORT", $"{port}", StringComparison.Ordinal), line, StringComparison.Ordinal);
        Assert.Equal(level == "FAIL" ? 1 : 0, result.ExitCode);
    }
}
