using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Tests.EndToEnd;

/// <summary>Legacy mode with FallbackToSpool and a real chain, Postfix -> Bridge -> Dovecot LMTP: mail that fell back to the
/// spool while the store was down reaches the store by itself, each message once, also across a restart of Bridge.</summary>
public class FallbackCollectTests
{
    private const string Domain = SpoolScenario.Domain;

    [Fact]
    public async Task Mail_that_fell_back_to_the_spool_reaches_the_store_once_when_it_is_back_even_after_a_restart()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        using var root = new TempDir("bridge-root");
        var lmtpPort = FreePort.Next();
        await using var store = await DovecotServer.StartStoreAsync(lmtpPort, TestAccounts.Alice);
        string[] settings =
        [
            $"Bridge:LocalDomains:0={Domain}", "Bridge:Mode=Legacy", "Bridge:Legacy:Host=127.0.0.1", $"Bridge:Legacy:Port={lmtpPort}",
            "Bridge:Legacy:Protocol=Lmtp", "Bridge:Legacy:FallbackToSpool=true", "Bridge:Retry:Budget=00:00:02", "Bridge:Retry:AttemptTimeout=00:00:01",
        ];
        var bridge = await BridgeServer.StartAsync(spool.Path, root.Path, settings);
        try
        {
            await using var postfix = await PostfixServer.StartAsync(bridge.Port);
            await store.StopAsync();
            for (var i = 0; i < 5; i++)
            {
                Assert.StartsWith("250 ", (await Swaks.SendAsync(postfix.SmtpPort, $"{TestAccounts.Alice}@{Domain}",
                    extra: ["--header", $"Message-Id: <fallback-{i}@test>"])).FinalReply, StringComparison.Ordinal);
            }
            var mailbox = spool[TestAccounts.Alice];
            await Eventually.WaitAsync(async () => File.Exists(mailbox) && (await MboxReaders.PythonMailboxAsync(mailbox)).Count == 5, 60, () => postfix.Log);
            Assert.Equal(0, await postfix.QueuedAsync()); // Bridge took them all (into the spool)
            var spooled = (await MboxReaders.PythonMailboxAsync(mailbox)).Select(m => m.MessageId!.Trim('<', '>')).ToList(); // arrival order

            // Bridge restarts while the store is still down; the new one finishes the job once the store is back.
            await bridge.DisposeAsync();
            bridge = await BridgeServer.StartAsync(spool.Path, root.Path, [.. settings, $"Bridge:Listen:Port={bridge.Port}"]);
            await store.StartAgainAsync();

            await Eventually.WaitAsync(async () => (await store.FetchInboxAsync(TestAccounts.Alice)).Count >= 5 && new FileInfo(mailbox).Length == 0, 60,
                () => string.Join('\n', bridge.Logs.Lines));
            var ids = (await store.FetchInboxAsync(TestAccounts.Alice)).Select(m => Encoding.UTF8.GetString(m))
                .Select(t => t[(t.IndexOf("Message-Id: <", StringComparison.OrdinalIgnoreCase) + 13)..].Split('>')[0]).ToList();
            Assert.Equal(spooled, ids); // each once, in the order they arrived at Bridge
            Assert.Equal(Enumerable.Range(0, 5).Select(i => $"fallback-{i}@test"), ids.Order(StringComparer.Ordinal));
            Assert.Contains(bridge.Logs.Lines, l => l.Contains($"collect after fallback: drain {TestAccounts.Alice}: 5 relayed", StringComparison.Ordinal));
        }
        finally
        {
            await bridge.DisposeAsync();
        }
    }

    /// <summary>Found by the soak (tests/Bridge.Soak): a collection that stopped part-way (a login's time limit) left its
    /// cursor, and its user was then moved to Spool mode, so no collection went on: what the store already had stayed
    /// in the spool too. The collector's next round now cuts it.</summary>
    [Fact]
    public async Task A_collection_left_part_way_for_a_user_now_in_spool_mode_is_cut_so_nothing_stays_in_both_places()
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        using var root = new TempDir("bridge-root");
        var mailbox = spool[TestAccounts.Alice];
        var records = Enumerable.Range(0, 3).Select(i => $"From sender@example.org  Thu Dec  3 10:00:00 2026\nMessage-Id: <part-{i}@test>\n\nbody {i}\n\n").ToList();
        SpoolScenario.CreateMailbox(mailbox, Encoding.ASCII.GetBytes(string.Concat(records)), alice.Uid, alice.Gid);
        await using var bridge = await BridgeServer.StartAsync(spool.Path, root.Path, $"Bridge:LocalDomains:0={Domain}", "Bridge:Mode=Legacy",
            $"Bridge:Users:0:ShortNames:0={TestAccounts.Alice}", "Bridge:Users:0:Mode=Spool", "Bridge:Legacy:Host=127.0.0.1",
            $"Bridge:Legacy:Port={FreePort.Next()}");

        // As a collection leaves it when it stops after the store took the first message.
        var journal = new Bridge.Delivery.Spool.AppendJournal(Path.Combine(root.Path, "journal"));
        var fd = Bridge.Native.Libc.Open(mailbox, Bridge.Native.Libc.O_RDONLY | Bridge.Native.Libc.O_CLOEXEC, 0);
        try
        {
            var cursor = Bridge.Delivery.Spool.CollectCursor.After(fd, 0, Encoding.ASCII.GetByteCount(records[0]));
            Assert.NotNull(cursor);
            Assert.Equal(0, cursor.Save(journal, TestAccounts.Alice, durable: true));
        }
        finally
        {
            Bridge.Native.Libc.Close(fd);
        }

        await Eventually.WaitAsync(() => File.ReadAllText(mailbox) == records[1] + records[2], 20, () => string.Join('\n', bridge.Logs.Lines));
        Assert.Empty(journal.PendingOf(Bridge.Delivery.Spool.CollectCursor.Kind));
    }
}
