using Bridge.Tests.Support;

namespace Bridge.Tests.Operations;

/// <summary>`mailbridge check` with Bridge:Lmtp:Socket: a real Postfix configuration (deploy/postfix/main.cf.lmtp, read
/// with postconf through MAIL_CONFIG) routing a domain to the socket, the socket's mode and group, and whether
/// Postfix's user may connect to it.</summary>
public class LmtpCheckTests
{
    private const string Domain = SpoolScenario.Domain;

    [Fact]
    public async Task Check_follows_postfix_to_the_socket_and_finds_a_socket_postfix_cannot_reach()
    {
        Peers.RequireRoot();
        var postconf = Peers.Require("postconf", "postfix");
        using var dir = new TempDir("bridge-daemon");
        var conf = dir.CreateSubdirectory("postfix");
        File.Copy("/usr/share/postfix/main.cf.debian", Path.Combine(conf, "main.cf"));
        File.Copy("/usr/share/postfix/master.cf.dist", Path.Combine(conf, "master.cf"));
        var queue = dir.CreateSubdirectory("queue");
        var directoryPrivate = dir.CreateSubdirectory("queue/private", "700");
        await Proc.RunAsync("chown", ["postfix", directoryPrivate]); // as Postfix makes it
        string[] snippet = [.. File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "deploy", "postfix", "main.cf.lmtp"))
            .Where(l => l.StartsWith("mailbox_transport", StringComparison.Ordinal))];
        var edit = await Proc.RunAsync(postconf, ["-c", conf, "-e", $"queue_directory = {queue}", $"mydestination = {Domain}, localhost",
            "message_size_limit = 10240000", .. snippet]);
        Assert.True(edit.ExitCode == 0, edit.Output);

        var socket = Path.Combine(directoryPrivate, "bridge-lmtp");
        string[] lmtp = [$"Bridge:Lmtp:Socket={socket}", "Bridge:Lmtp:SocketGroup=postfix", "Bridge:MaxMessageBytes=10240000"];
        await using var s = await SpoolScenario.StartAsync(lmtp);

        var good = await CheckAsync(dir, conf, s, lmtp);
        Assert.Contains(good, l => l.StartsWith("OK ", StringComparison.Ordinal) &&
            l.Contains($"mail for {Domain} goes to Bridge over LMTP (mailbox_transport = lmtp:unix:private/bridge-lmtp)", StringComparison.Ordinal));
        Assert.Contains(good, l => l.StartsWith("OK ", StringComparison.Ordinal) && l.Contains($"lmtp {socket}", StringComparison.Ordinal) &&
            l.Contains("a socket with mode 660 and group postfix", StringComparison.Ordinal));
        Assert.Contains(good, l => l.StartsWith("OK ", StringComparison.Ordinal) && l.Contains("postfix (the MTA's delivery agent) may connect", StringComparison.Ordinal));
        Assert.DoesNotContain(good, l => l.Contains("recipient_limit", StringComparison.Ordinal)); // LMTP answers each recipient
        Assert.All(good, l => Assert.StartsWith("OK ", l, StringComparison.Ordinal));

        File.SetUnixFileMode(socket, UnixFileMode.UserRead | UnixFileMode.UserWrite); // 0600: only root
        var bad = await CheckAsync(dir, conf, s, lmtp);
        Assert.Contains(bad, l => l.StartsWith("WARN ", StringComparison.Ordinal) && l.Contains("mode 600", StringComparison.Ordinal));
        Assert.Contains(bad, l => l.StartsWith("FAIL ", StringComparison.Ordinal) &&
            l.Contains("postfix (the MTA's delivery agent) cannot connect: it may not write the socket (mode 600", StringComparison.Ordinal));
    }

    /// <summary>The lines of `mailbridge check` about Postfix and the LMTP socket.</summary>
    private static async Task<List<string>> CheckAsync(TempDir dir, string conf, SpoolScenario s, string[] lmtp)
    {
        var result = await BridgeProcess.RunToExitAsync(dir, new Dictionary<string, string> { ["MAIL_CONFIG"] = conf },
            ["check", $"--Bridge:Spool:Directory={s.Spool.Path}", $"--Bridge:Spool:JournalDirectory={dir["journal"]}", $"--Bridge:Listen:Port={s.Port}",
             $"--Bridge:LocalDomains:0={Domain}", .. lmtp.Select(l => "--" + l)]);
        return [.. result.Stdout.Split('\n').Where(l => l.Contains(" postfix ", StringComparison.Ordinal) || l.Contains(" lmtp ", StringComparison.Ordinal))];
    }
}
