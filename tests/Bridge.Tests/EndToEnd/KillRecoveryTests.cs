using System.Text;
using System.Text.RegularExpressions;
using Bridge.Tests.Support;

namespace Bridge.Tests.EndToEnd;

/// <summary>kill -9 of Bridge during a stream of deliveries from a real Postfix, then restart and flush.</summary>
public partial class KillRecoveryTests
{
    private const int Sigkill = 9;

    [GeneratedRegex(@"^Message-Id: <kill-(\d+)@test>\r?$", RegexOptions.Multiline | RegexOptions.IgnoreCase)]
    private static partial Regex KillId();

    [Fact]
    public async Task After_kill_9_and_a_restart_every_message_is_in_the_mbox_whole_and_the_mbox_parses()
    {
        const int total = 16;
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        using var data = new TempDir();
        var port = FreePort.Next();
        await File.WriteAllTextAsync(dir["appsettings.json"], $$"""
            { "Bridge": { "Listen": { "Port": {{port}} }, "LocalDomains": [ "{{SpoolScenario.Domain}}" ],
              "Spool": { "Directory": "{{spool.Path}}", "JournalDirectory": "{{dir["journal"]}}", "MaxMailboxBytes": 0 } } }
            """);
        var body = string.Concat(Enumerable.Repeat(new string('k', 499) + "\n", 6000)); // 3 MB: long appends (lines below Postfix's 990 fold)
        await using var postfix = await PostfixServer.StartAsync(port);
        await StreamThroughKillAsync(dir, postfix, total, async i =>
        {
            var file = data[$"m{i}"];
            await File.WriteAllTextAsync(file, $"Subject: kill {i}\nMessage-Id: <kill-{i}@test>\n\n{body}end {i}");
            Assert.StartsWith("250 ", (await Swaks.SendAsync(postfix.SmtpPort, $"{TestAccounts.Alice}@{SpoolScenario.Domain}", dataFile: file)).FinalReply,
                StringComparison.Ordinal);
        }, bridge => Eventually.WaitAsync(() => bridge.Lines.Count(l => l.Contains("status=sent", StringComparison.Ordinal)) >= 2, 60, () => postfix.Log));

        var mailbox = spool[TestAccounts.Alice];
        var messages = await MboxReaders.PythonMailboxAsync(mailbox);
        var ids = messages.Select(m => int.Parse(KillId().Match(Encoding.ASCII.GetString(m.Raw)).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(Enumerable.Range(0, total).ToList(), ids.Distinct().Order().ToList()); // none lost
        Assert.True(ids.Count - total <= 1, $"{ids.Count - total} duplicates: only a message acknowledged at the moment of the kill may arrive twice");
        Assert.All(messages, m => Assert.EndsWith($"{body}end {KillId().Match(Encoding.ASCII.GetString(m.Raw)).Groups[1].Value}\n", m.BodyText, StringComparison.Ordinal));
        Assert.Equal(messages.Count, (await MboxReaders.FormailMessageIdsAsync(mailbox)).Count);
        Assert.Empty(Directory.GetFiles(dir["journal"]));
    }

    [Fact]
    public async Task After_kill_9_of_a_legacy_bridge_and_a_restart_the_store_has_every_message()
    {
        const int total = 20;
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var port = FreePort.Next();
        await File.WriteAllTextAsync(dir["appsettings.json"], $$"""
            { "Bridge": { "Mode": "Legacy", "Listen": { "Port": {{port}} }, "LocalDomains": [ "{{SpoolScenario.Domain}}" ],
              "Spool": { "Directory": "{{spool.Path}}", "JournalDirectory": "{{dir["journal"]}}" },
              "Legacy": { "Host": "127.0.0.1", "Port": {{store.LmtpPort}}, "Protocol": "Lmtp" } } }
            """);
        await using var postfix = await PostfixServer.StartAsync(port);
        await StreamThroughKillAsync(dir, postfix, total, async i =>
        {
            var sent = await Swaks.SendAsync(postfix.SmtpPort, $"{TestAccounts.Alice}@{SpoolScenario.Domain}",
                extra: ["--header", $"Message-Id: <kill-{i}@test>", "--body", string.Concat(Enumerable.Repeat("legacy line\n", 5000))]);
            Assert.StartsWith("250 ", sent.FinalReply, StringComparison.Ordinal);
        }, _ => Task.CompletedTask);

        var ids = (await store.FetchInboxAsync(TestAccounts.Alice))
            .Select(m => int.Parse(KillId().Match(Encoding.ASCII.GetString(m)).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(Enumerable.Range(0, total).ToList(), ids.Distinct().Order().ToList()); // none lost
        Assert.True(ids.Count - total <= 1, $"{ids.Count - total} duplicates: only a message acknowledged by the store at the moment of the kill may arrive twice");
    }

    /// <summary>Sends <paramref name="total"/> messages into Postfix, kills Bridge with SIGKILL half way (after
    /// <paramref name="beforeKill"/>), starts it again, then flushes Postfix until its queue is empty.</summary>
    private static async Task StreamThroughKillAsync(TempDir dir, PostfixServer postfix, int total, Func<int, Task> sendAsync,
        Func<BridgeProcess, Task> beforeKill)
    {
        var bridge = await BridgeProcess.StartAsync(dir, null);
        try
        {
            for (var i = 0; i < total; i++)
            {
                await sendAsync(i);
                if (i == total / 2)
                {
                    await beforeKill(bridge);
                    bridge.Signal(Sigkill);
                    await bridge.WaitForExitAsync(TimeSpan.FromSeconds(10));
                    await bridge.DisposeAsync();
                    await Task.Delay(1000);
                    bridge = await BridgeProcess.StartAsync(dir, null);
                }
            }
            await postfix.FlushAsync();
            // On failure the end of both logs (a CI log shows only the first lines of a failure's message).
            await Eventually.WaitAsync(async () => await postfix.QueuedAsync() == 0, 120, () =>
                "postfix, last lines:\n" + string.Join('\n', postfix.Log.Split('\n').TakeLast(20)) +
                "\nbridge, last lines:\n" + string.Join('\n', bridge.Lines.TakeLast(20)));
        }
        finally
        {
            await bridge.DisposeAsync();
        }
    }
}
