using System.Text;
using System.Text.RegularExpressions;
using Bridge.Tests.Support;

namespace Bridge.Tests.EndToEnd;

/// <summary>Postfix -> Bridge (Legacy) -> Dovecot, with the store failing in the middle; and the live mode toggle.</summary>
public partial class LegacyChainTests
{
    [GeneratedRegex("Message-Id: <chain-(\\d+)@test>", RegexOptions.IgnoreCase)]
    private static partial Regex ChainId();

    [Fact]
    public async Task Stopping_the_store_mid_stream_loses_and_duplicates_nothing()
    {
        const int total = 12;
        await using var s = await LegacyScenario.StartAsync(storeUp: true,
            "Bridge:Retry:Budget=00:00:02", "Bridge:Retry:MaxAttempts=2", "Bridge:Retry:BreakDuration=00:00:02");
        await using var postfix = await PostfixServer.StartAsync(s.Port);

        for (var i = 0; i < total; i++)
        {
            if (i == 4)
            {
                // Between messages: a store that dies after saving a message but before acknowledging it makes
                // any SMTP/LMTP client send it again; that window is the protocol's, not something to test here.
                await Eventually.WaitAsync(async () => await postfix.QueuedAsync() == 0, 30, () => postfix.Log);
                await s.Store!.StopAsync();
            }
            var sent = await Swaks.SendAsync(postfix.SmtpPort, $"bridgetest1@{SpoolScenario.Domain}", extra: ["--header", $"Message-Id: <chain-{i}@test>"]);
            Assert.StartsWith("250 ", sent.FinalReply, StringComparison.Ordinal);
        }
        await Eventually.WaitAsync(() => postfix.Log.Contains("status=deferred", StringComparison.Ordinal), 30, () => postfix.Log);
        await s.StartStoreAsync();
        await postfix.FlushAsync();

        await Eventually.WaitAsync(async () => await postfix.QueuedAsync() == 0, 90, () => postfix.Log);
        var ids = (await s.InboxAsync(TestAccounts.Alice))
            .Select(m => int.Parse(ChainId().Match(Encoding.UTF8.GetString(m)).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
            .Order().ToList();
        Assert.Equal(Enumerable.Range(0, total).ToList(), ids);
        Assert.Contains("451 4.4.1", postfix.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Flipping_Mode_in_appsettings_json_sends_the_next_message_to_the_other_target()
    {
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice, TestAccounts.Bob);
        static string Json(string mode) => $$"""{ "Bridge": { "Mode": "{{mode}}" } }""";
        await using var s = await SpoolScenario.StartWithSettingsFileAsync(Json("Spool"),
            "Bridge:Legacy:Host=127.0.0.1", $"Bridge:Legacy:Port={store.LmtpPort}", "Bridge:Legacy:Protocol=Lmtp");
        var file = s.Root["appsettings.json"];

        await Swaks.SendAsync(s.Port, $"bridgetest1@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <first@test>"]);
        Assert.Equal("<first@test>", Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox)).MessageId);

        await File.WriteAllTextAsync(file, Json("Legacy"));
        await Eventually.WaitAsync(() => s.Bridge.Logs.Lines.Any(l => l.Contains("Bridge:Mode changed from Spool to Legacy", StringComparison.Ordinal)), 10);
        await Swaks.SendAsync(s.Port, $"bridgetest1@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <second@test>"]);
        Assert.Contains("<second@test>", Encoding.UTF8.GetString(Assert.Single(await store.FetchInboxAsync(TestAccounts.Alice))), StringComparison.Ordinal);
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));

        await File.WriteAllTextAsync(file, Json("Legacy")); // same mode again: no second log line
        await File.WriteAllTextAsync(file, """{ "Bridge": { "Mode": "Sideways" } }""");
        await Eventually.WaitAsync(() => s.Bridge.Logs.Lines.Any(l => l.Contains("'Sideways' at 'Bridge:Mode'", StringComparison.Ordinal)), 10);
        await File.WriteAllTextAsync(file, """{ "Bridge": { "Mode": "Spool" """); // broken JSON: ignored, not "back to defaults"
        await Eventually.WaitAsync(() => s.Bridge.Logs.Lines.Any(l => l.Contains("Could not parse the JSON file", StringComparison.Ordinal)), 10);
        await Swaks.SendAsync(s.Port, $"bridgetest1@{SpoolScenario.Domain}", extra: ["--header", "Message-Id: <third@test>"]);
        Assert.Equal(2, (await store.FetchInboxAsync(TestAccounts.Alice)).Count);
        Assert.Single(s.Bridge.Logs.Lines, l => l.Contains("Bridge:Mode changed", StringComparison.Ordinal));
    }
}
