using System.Text;
using System.Text.RegularExpressions;
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.SecurityTests;

/// <summary>Issue #23 items 6 and 7: collecting a spool into the store. The mailbox's owner keeps appending with a
/// program that opened the mailbox once and takes only the fcntl lock (as Dovecot with mbox_write_locks = fcntl does)
/// while collections keep stopping part-way: no message may be lost or doubled and the mailbox keeps its inode. And a
/// login collects only its own user's spool, only in Legacy mode, whatever name it logs in with; an alias is no login.</summary>
public partial class CollectAttacks
{
    private const string Domain = Daemon.Domain;
    private const string Owner = TestAccounts.Alice;

    [GeneratedRegex(@"Message-Id: <([^>]+)>", RegexOptions.IgnoreCase)]
    private static partial Regex MessageId();

    private static byte[] Records(string prefix, int count, int bodyLines) => Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, count).Select(i =>
        $"From sender@example.org  Thu Dec  3 10:00:00 2026\nReturn-Path: <sender@example.org>\nMessage-Id: <{prefix}-{i}@test>\nSubject: {prefix} {i}\n\n" +
        string.Concat(Enumerable.Repeat($"line of {prefix} {i}\n", bodyLines)) + "\n")));

    private static IEnumerable<string> Ids(IEnumerable<byte[]> messages) =>
        messages.Select(m => MessageId().Match(Encoding.ASCII.GetString(m))).Where(m => m.Success).Select(m => m.Groups[1].Value);

    private static IEnumerable<string> IdsInSpool(string path) =>
        File.Exists(path) ? MessageId().Matches(File.ReadAllText(path)).Select(m => m.Groups[1].Value) : [];

    [Fact]
    public async Task An_fcntl_only_writer_loses_nothing_while_collections_stop_part_way_and_the_mailbox_keeps_its_inode()
    {
        var owner = await TestAccounts.EnsureAsync(Owner);
        await using var store = await DovecotServer.StartStoreAsync(0, Owner);
        using var work = new TempDir("bridge-collect", TempDir.Mode("755"));
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        using var state = new TempDir("bridge-state", TempDir.Mode("700"));
        BridgeProcess.CopyDaemon(work);
        await File.WriteAllTextAsync(work["appsettings.json"], "{}");
        var mailbox = spool[Owner];
        SpoolScenarioFile(mailbox, Records("spooled", 600, 40), owner);
        Assert.Equal(0, Libc.Lstat(mailbox, out var before));
        string[] settings = [.. Daemon.Arguments(spool, state, FreePort.Next(), ["Bridge:Mode=Legacy", "Bridge:Legacy:Host=127.0.0.1",
            $"Bridge:Legacy:Port={store.LmtpPort}", "Bridge:Legacy:LoginCollectTimeout=00:00:01"])];

        // The owner's own program: opened once, then append after append under the fcntl lock only.
        var writer = Proc.RunAsync("setpriv", [$"--reuid={owner.Uid}", $"--regid={owner.Gid}", "--clear-groups", "--", "/usr/bin/python3", "-c", $$"""
            import fcntl, os, time
            fd = os.open({{Quote(mailbox)}}, os.O_WRONLY | os.O_APPEND)
            for i in range(300):
                fcntl.lockf(fd, fcntl.LOCK_EX)
                os.write(fd, b"From writer@example.org  Thu Dec  3 10:00:00 2026\nMessage-Id: <written-%d@test>\n\nby the owner's program\n\n" % i)
                fcntl.lockf(fd, fcntl.LOCK_UN)
                time.sleep(0.01)
            """], timeout: TimeSpan.FromMinutes(3));
        var rounds = 0;
        while (!writer.IsCompleted || IdsInSpool(mailbox).Any())
        {
            // Two logins at once, each stopping after its second: collections that end part-way, again and again.
            var both = await Task.WhenAll(BridgeProcess.RunToExitAsync(work, ["collect", "--user", Owner, .. settings]),
                BridgeProcess.RunToExitAsync(work, ["collect", "--user", Owner, .. settings]));
            Assert.All(both, r => Assert.True(r.ExitCode == 0, r.Output));
            Assert.True(++rounds < 60, "the spool does not empty");
        }
        var written = await writer;
        Assert.True(written.ExitCode == 0, written.Output);

        var stored = Ids(await store.FetchInboxAsync(Owner)).ToList();
        var expected = Enumerable.Range(0, 600).Select(i => $"spooled-{i}@test").Concat(Enumerable.Range(0, 300).Select(i => $"written-{i}@test")).Order().ToList();
        Assert.Equal(expected, stored.Concat(IdsInSpool(mailbox)).Order().ToList()); // every message once: none lost, none doubled
        Assert.Equal(0, Libc.Lstat(mailbox, out var after));
        Assert.True(after.SameFileAs(before), "the mailbox was never replaced by another file");
        Assert.True(rounds > 1, "the collections stopped part-way at least once");
    }

    [Fact]
    public async Task A_login_collects_only_its_own_users_spool_in_legacy_mode_by_any_of_its_names_and_an_alias_is_no_login()
    {
        var george = await TestAccounts.EnsureAsync(TestAccounts.Alice); // in Legacy mode: short names bridgetest1, gw, gw@afp548.test
        var anna = await TestAccounts.EnsureAsync(TestAccounts.Bob); // in Spool mode: the spool is her INBOX
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice, TestAccounts.Bob);
        using var work = new TempDir("bridge-collect", TempDir.Mode("755"));
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        using var state = new TempDir("bridge-state", TempDir.Mode("700"));
        BridgeProcess.CopyDaemon(work);
        await File.WriteAllTextAsync(work["aliases"], $"postmaster: {TestAccounts.Alice}\n");
        await File.WriteAllTextAsync(work["appsettings.json"], $$"""
            { "Bridge": { "Mode": "Legacy", "AliasFiles": [ "{{work["aliases"]}}" ],
              "Users": [ { "ShortNames": [ "{{TestAccounts.Alice}}", "gw", "gw@{{Domain}}" ] },
                         { "ShortNames": [ "{{TestAccounts.Bob}}" ], "Mode": "Spool" } ],
              "Legacy": { "Host": "127.0.0.1", "Port": {{store.LmtpPort}} } } }
            """);
        SpoolScenarioFile(spool[TestAccounts.Alice], Records("george", 2, 1), george);
        SpoolScenarioFile(spool[TestAccounts.Bob], Records("anna", 2, 1), anna);
        string[] settings = [.. Daemon.Arguments(spool, state, FreePort.Next(), [])];
        async Task CollectAsync(string login) =>
            Assert.Equal(0, (await BridgeProcess.RunToExitAsync(work, ["collect", "--user", login, .. settings])).ExitCode);

        await CollectAsync(TestAccounts.Bob);
        Assert.Equal(2, IdsInSpool(spool[TestAccounts.Bob]).Count());
        Assert.Empty(await store.FetchInboxAsync(TestAccounts.Bob));

        await CollectAsync("postmaster");
        await CollectAsync("gw+tag");
        await CollectAsync($"{TestAccounts.Alice}@elsewhere.example");
        Assert.Equal(2, IdsInSpool(spool[TestAccounts.Alice]).Count());
        Assert.Empty(await store.FetchInboxAsync(TestAccounts.Alice));

        await CollectAsync($"GW@{Domain.ToUpperInvariant()}"); // the note's users log in with their address too
        Assert.Empty(IdsInSpool(spool[TestAccounts.Alice]));
        Assert.Equal(["george-0@test", "george-1@test"], Ids(await store.FetchInboxAsync(TestAccounts.Alice)).Order());
        Assert.Equal(2, IdsInSpool(spool[TestAccounts.Bob]).Count());
    }

    /// <summary>Found by attacking the collect socket as a member of its group: a flood of connections used up the
    /// daemon's descriptors, and one failed accept (EMFILE) stopped the socket for good, every later login then waiting
    /// the client's whole time limit. Now: at most MaxConcurrentRequests are held, and accepting goes on after a failure.</summary>
    [Fact]
    public async Task A_flood_of_collect_connections_or_a_shortage_of_descriptors_never_stops_the_collect_socket()
    {
        Peers.Require("prlimit", "util-linux");
        using var run = new TempDir("bridge-collect-run", TempDir.Mode("755"));
        var socket = run["collect"];
        await using var daemon = await Daemon.StartAsync(RunAs.Root, $"Bridge:Collect:Socket={socket}", "Bridge:Collect:SocketGroup=dovecot");
        await daemon.Process.WaitForLineAsync("collect socket", TimeSpan.FromSeconds(10));
        var baseline = Directory.GetFiles($"/proc/{daemon.Process.Pid}/fd").Length;

        // As Dovecot's user (a member of the socket's group): 400 connections opened and held, saying nothing.
        var flood = Proc.RunAsync("setpriv", ["--reuid=dovecot", "--regid=dovecot", "--init-groups", "--", "/usr/bin/python3", "-c", $$"""
            import socket, time
            held = []
            for i in range(400):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(2)
                try:
                    s.connect({{Quote(socket)}}); held.append(s)
                except OSError:
                    pass
            time.sleep(2)
            """], timeout: TimeSpan.FromMinutes(1));
        var peak = 0;
        while (!flood.IsCompleted)
        {
            peak = Math.Max(peak, Directory.GetFiles($"/proc/{daemon.Process.Pid}/fd").Length);
            await Task.Delay(50);
        }
        Assert.True((await flood).ExitCode == 0, (await flood).Output);
        Assert.True(peak < baseline + 200, $"the daemon held {peak - baseline} more descriptors during the flood");
        Assert.True(Answered(await AskAsync(socket, "COLLECT nosuchlogin\\n")), daemon.Log);

        // No descriptor left for a moment: accepting fails (EMFILE), and goes on once there are descriptors again.
        var soft = File.ReadLines($"/proc/{daemon.Process.Pid}/limits").First(l => l.StartsWith("Max open files", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[3];
        Assert.Equal(0, (await Proc.RunAsync("prlimit", ["--pid", daemon.Process.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "--nofile=16:"])).ExitCode);
        for (var i = 0; i < 3; i++)
        {
            _ = await AskAsync(socket, "COLLECT nosuchlogin\\n", TimeSpan.FromSeconds(1));
        }
        Assert.Equal(0, (await Proc.RunAsync("prlimit", ["--pid", daemon.Process.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), $"--nofile={soft}:"])).ExitCode);
        await Eventually.WaitAsync(async () => Answered(await AskAsync(socket, "COLLECT nosuchlogin\\n", TimeSpan.FromSeconds(2))), 10,
            () => daemon.Log);
        Assert.Contains("collect socket: cannot accept a connection", daemon.Log, StringComparison.Ordinal);
    }

    /// <summary>The collect socket is Dovecot's (mode 0660, group dovecot): a local user outside that group cannot even
    /// connect, so cannot make the daemon collect anybody's spool (nor learn from its answers whose spool holds mail).</summary>
    [Fact]
    public async Task A_local_user_outside_the_sockets_group_cannot_connect_to_the_collect_socket()
    {
        var intruder = await Intruder.EnsureAsync();
        using var run = new TempDir("bridge-collect-run", TempDir.Mode("755"));
        var socket = run["collect"];
        await using var daemon = await Daemon.StartAsync(RunAs.Root, $"Bridge:Collect:Socket={socket}", "Bridge:Collect:SocketGroup=dovecot");
        await daemon.Process.WaitForLineAsync("collect socket", TimeSpan.FromSeconds(10));

        var tried = await intruder.PythonAsync($$"""
            import socket
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect({{Quote(socket)}}); s.sendall(b'COLLECT {{Owner}}\n'); print('answered: ' + s.makefile().readline().strip())
            except PermissionError:
                print('refused')
            """);
        Assert.Equal("refused", tried.Stdout.Trim());
        Assert.True(Answered(await AskAsync(socket, "COLLECT nosuchlogin\\n")), daemon.Log); // Dovecot's user still can
    }

    private static bool Answered(string answer) => answer.StartsWith("OK ", StringComparison.Ordinal) || answer.StartsWith("NO ", StringComparison.Ordinal);

    /// <summary>One request on the collect socket, as Dovecot's user; the answer line, or "" when none came in time.</summary>
    private static async Task<string> AskAsync(string socket, string request, TimeSpan? wait = null)
    {
        var result = await Proc.RunAsync("setpriv", ["--reuid=dovecot", "--regid=dovecot", "--init-groups", "--", "/usr/bin/python3", "-c", $$"""
            import socket
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout({{(wait ?? TimeSpan.FromSeconds(10)).TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}})
            try:
                s.connect({{Quote(socket)}}); s.sendall(b'{{request}}'); print(s.makefile().readline().strip())
            except OSError:
                print('')
            """], timeout: TimeSpan.FromSeconds(30));
        return result.Stdout.Trim();
    }

    private static void SpoolScenarioFile(string path, byte[] content, (uint Uid, uint Gid) owner) =>
        SpoolScenario.CreateMailbox(path, content, owner.Uid, owner.Gid);

    private static string Quote(string value) => "'" + value.Replace("'", "\\'", StringComparison.Ordinal) + "'";
}
