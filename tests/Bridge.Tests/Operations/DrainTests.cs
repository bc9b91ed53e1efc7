using System.Text;
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.Tests.Operations;

/// <summary>`bridge drain`: spooled mail to the store, removing exactly what the store accepted.</summary>
public class DrainTests
{
    private static string[] Settings(SpoolScenario s, int storePort, string protocol = "Lmtp") =>
    [
        $"--Bridge:Spool:Directory={s.Spool.Path}", $"--Bridge:Spool:JournalDirectory={s.Root["journal"]}",
        $"--Bridge:LocalDomains:0={SpoolScenario.Domain}", "--Bridge:Legacy:Host=127.0.0.1", $"--Bridge:Legacy:Port={storePort}",
        $"--Bridge:Legacy:Protocol={protocol}",
    ];

    /// <summary>Three messages in alice's spool, written by Bridge itself in Spool mode.</summary>
    private static async Task FillAsync(SpoolScenario s, int bigBody = 0)
    {
        using var dir = new TempDir();
        string[] bodies = ["first", "From the second\n>From quoted", bigBody > 0 ? new string('b', bigBody) : "third"];
        for (var i = 0; i < bodies.Length; i++)
        {
            var file = dir[$"m{i}"];
            await File.WriteAllTextAsync(file, $"Subject: spooled {i}\nMessage-Id: <spooled-{i}@test>\n\n{bodies[i]}");
            var sent = await Swaks.SendAsync(s.Port, $"alice@{SpoolScenario.Domain}", from: i == 2 ? "" : "sender@example.org", dataFile: file);
            Assert.StartsWith("250 ", sent.FinalReply, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Drain_moves_every_spooled_message_to_the_store_and_empties_the_mailbox()
    {
        await using var s = await SpoolScenario.StartAsync();
        await FillAsync(s);
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");

        var result = await BridgeProcess.RunToExitAsync(dir, ["drain", "--user", TestAccounts.Alice, .. Settings(s, store.LmtpPort)]);

        Assert.True(result.ExitCode == 0, result.Output);
        Assert.Contains($"drain {TestAccounts.Alice}: 3 relayed to lmtp:[127.0.0.1]:{store.LmtpPort}, 0 bytes left in the spool", result.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, new FileInfo(s.AliceMailbox).Length);
        var stored = (await store.FetchInboxAsync(TestAccounts.Alice)).Select(m => Encoding.UTF8.GetString(m)).ToList();
        Assert.Equal(3, stored.Count);
        for (var i = 0; i < 3; i++)
        {
            Assert.Contains($"<spooled-{i}@test>", stored[i], StringComparison.Ordinal);
        }
        Assert.EndsWith("\r\n\r\nFrom the second\r\n>From quoted\r\n", stored[1], StringComparison.Ordinal); // mboxrd: given back as sent
        Assert.StartsWith("Return-Path: <>", stored[2], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_spooled_message_reaches_the_store_byte_for_byte_through_drain_and_its_dkim_signature_verifies()
    {
        await using var s = await SpoolScenario.StartAsync();
        using var dir = new TempDir();
        // From lines at every depth of quoting, a dot line, 8-bit text: what mboxo could not give back exactly.
        var (signed, key) = DkimTestMessage.Create($"alice@{SpoolScenario.Domain}",
            "From the start\r\n>From once\r\n>>From twice\r\n.dot line\r\ncaf\u00e9 \u00fcber\r\n\r\nFrom the end\r\n", "caf\u00e9 r\u00e9sum\u00e9",
            utf8Headers: true);
        Assert.Contains("Subject: caf\u00e9 r\u00e9sum\u00e9\r\n", Encoding.UTF8.GetString(signed), StringComparison.Ordinal); // a raw UTF-8 header
        await File.WriteAllBytesAsync(dir["signed.eml"], signed);
        Assert.StartsWith("250 ", (await Swaks.SendAsync(s.Port, $"alice@{SpoolScenario.Domain}", dataFile: dir["signed.eml"])).FinalReply,
            StringComparison.Ordinal);
        Assert.Contains("\n>>>From twice\n", await File.ReadAllTextAsync(s.AliceMailbox), StringComparison.Ordinal); // mboxrd in the spool
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice);

        var result = await BridgeProcess.RunToExitAsync(new TempDir("bridge-daemon"), ["drain", "--user", TestAccounts.Alice, .. Settings(s, store.LmtpPort)]);

        Assert.True(result.ExitCode == 0, result.Output);
        var stored = Assert.Single(await store.FetchInboxAsync(TestAccounts.Alice));
        var original = (byte[])[.. signed, .. "\r\n"u8]; // swaks ends the message with the CRLF before "."
        Assert.True(stored.AsSpan().EndsWith(original), "the collected message differs from the one received:\n" + Encoding.UTF8.GetString(stored));
        var added = Encoding.UTF8.GetString(stored, 0, stored.Length - original.Length);
        Assert.DoesNotContain("X-Original-To:", added, StringComparison.Ordinal); // the spool's delivery headers are gone
        Assert.True(await DkimTestMessage.VerifyAsync(stored, key), "DKIM signature does not verify at the store");
    }

    [Fact]
    public async Task With_the_store_down_nothing_leaves_the_spool()
    {
        await using var s = await SpoolScenario.StartAsync();
        await FillAsync(s);
        var before = await File.ReadAllBytesAsync(s.AliceMailbox);
        using var dir = new TempDir("bridge-daemon");

        var result = await BridgeProcess.RunToExitAsync(dir, ["drain", .. Settings(s, FreePort.Next())]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("the rest stays in the spool", result.Stdout, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllBytesAsync(s.AliceMailbox));
    }

    [Fact]
    public async Task A_dry_run_lists_and_moves_nothing()
    {
        await using var s = await SpoolScenario.StartAsync();
        await FillAsync(s);
        var before = await File.ReadAllBytesAsync(s.AliceMailbox);
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");

        var result = await BridgeProcess.RunToExitAsync(dir, ["drain", "--dry-run", "--user", TestAccounts.Alice, .. Settings(s, store.LmtpPort)]);

        Assert.True(result.ExitCode == 0, result.Output);
        Assert.Equal(3, result.Stdout.Split('\n').Count(l => l.Contains("would relay a message from <", StringComparison.Ordinal)));
        Assert.Equal(before, await File.ReadAllBytesAsync(s.AliceMailbox));
        Assert.Empty(await store.FetchInboxAsync(TestAccounts.Alice));
    }

    [Fact]
    public async Task A_refusal_stops_the_drain_and_the_spool_keeps_exactly_the_rest_with_its_owner()
    {
        await using var s = await SpoolScenario.StartAsync();
        await FillAsync(s, bigBody: 60_000); // the store front refuses messages over 30 kB
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice);
        await using var front = await PostfixServer.StartStoreFrontAsync(SpoolScenario.Domain, store.LmtpPort, 0, "message_size_limit=30000");
        using var dir = new TempDir("bridge-daemon");

        var result = await BridgeProcess.RunToExitAsync(dir, ["drain", "--user", TestAccounts.Alice, .. Settings(s, front.SmtpPort, "Smtp")]);

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("the store refused message 3 (552 5.3.4", result.Stdout, StringComparison.Ordinal);
        var left = await MboxReaders.PythonMailboxAsync(s.AliceMailbox);
        Assert.Equal("<spooled-2@test>", Assert.Single(left).MessageId);
        Assert.Equal(0, Libc.Lstat(s.AliceMailbox, out var stat));
        Assert.Equal(s.AliceIds.Uid, stat.Uid);
        Assert.Equal(Convert.ToUInt32("600", 8), stat.Permissions);
        await Eventually.WaitAsync(async () => (await store.FetchInboxAsync(TestAccounts.Alice)).Count == 2, 30, () => front.Log);
        Assert.StartsWith("250 ", (await Swaks.SendAsync(s.Port, $"alice@{SpoolScenario.Domain}")).FinalReply, StringComparison.Ordinal);
        Assert.Equal(2, (await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).Count); // Bridge appends to the new file
    }

    [Fact]
    public async Task Reading_a_200_MB_mbox_keeps_memory_at_one_message()
    {
        var alice = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        using var dir = new TempDir("bridge-daemon");
        var mailbox = spool[TestAccounts.Alice];
        var body = string.Concat(Enumerable.Repeat(new string('m', 99) + "\n", 1000)); // 100 kB per message
        SpoolScenario.CreateMailbox(mailbox, [], alice.Uid, alice.Gid); // owner and mode; the content follows
        await using (var writer = new StreamWriter(mailbox))
        {
            for (var i = 0; i < 2000; i++)
            {
                await writer.WriteAsync($"From sender@example.org  Tue Nov 24 10:00:00 2026\nSubject: big {i}\n\n{body}\n");
            }
        }
        BridgeProcess.CopyDaemon(dir);

        var result = await Proc.RunAsync("/usr/bin/time", ["-f", "maxrss=%M", "dotnet", dir["mailbridge.dll"], "drain", "--dry-run",
            "--user", TestAccounts.Alice, $"--Bridge:Spool:Directory={spool.Path}", $"--Bridge:Spool:JournalDirectory={dir["journal"]}",
            "--Bridge:Legacy:Host=127.0.0.1"], timeout: TimeSpan.FromMinutes(3));

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(2000, result.Stdout.Split('\n').Count(l => l.Contains("would relay", StringComparison.Ordinal)));
        var maxRssKb = long.Parse(result.Stderr.Split("maxrss=")[1].Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(maxRssKb < 150_000, $"peak RSS {maxRssKb / 1024} MiB for a {new FileInfo(mailbox).Length >> 20} MiB mbox");
    }
}
