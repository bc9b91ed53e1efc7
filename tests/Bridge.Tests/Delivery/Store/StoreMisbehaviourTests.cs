using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Store;

/// <summary>Stores that hang up after the message, send garbage, or answer with codes that make no sense: Bridge's
/// client always gets a clean, classified reply, and a message the store may have is never sent to it twice.</summary>
public class StoreMisbehaviourTests
{
    private const string Alice = "bridgetest1@" + SpoolScenario.Domain;

    private static Task<SpoolScenario> BridgeToAsync(int port, string protocol, params string[] settings) => SpoolScenario.StartAsync([
        "Bridge:Mode=Legacy", "Bridge:Legacy:Host=127.0.0.1", $"Bridge:Legacy:Port={port}", $"Bridge:Legacy:Protocol={protocol}",
        "Bridge:Retry:BaseDelay=00:00:00.100", "Bridge:Retry:MaxDelay=00:00:00.200", .. settings]);

    [Theory]
    [InlineData("Smtp")]
    [InlineData("Lmtp")]
    public async Task A_store_that_hangs_up_after_the_final_dot_gets_the_message_once_and_the_client_451(string protocol)
    {
        using var sink = await SmtpSink.StartAsync(protocol == "Lmtp" ? ["-L", "-q", "."] : ["-q", "."]);
        await using var s = await BridgeToAsync(sink.Port, protocol);

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("451 4.4.1 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Contains("outcome unknown", result.FinalReply, StringComparison.Ordinal);
        await Task.Delay(1000); // a retry would have come by now (BaseDelay 0.1 s)
        Assert.Equal(1, sink.Received);
        Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains("attempts=1,", StringComparison.Ordinal) && l.Contains("status=deferred", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_store_that_resets_the_connection_part_way_through_the_message_is_a_store_failure_and_frees_its_connection()
    {
        // The store goes away while Bridge writes the message (a restart): the reply is the store's failure (451 4.4.1),
        // never an unexpected error, and the one connection Bridge may hold is free for the next message at once: it
        // used to be lost for good (every later relay then waited for a connection that never came).
        using var store = await ScriptedStore.StartAsync("data-reset");
        await using var s = await BridgeToAsync(store.Port, "Smtp", "Bridge:Legacy:MaxConnections=1", "Bridge:Retry:MaxAttempts=1",
            "Bridge:Retry:AttemptTimeout=00:00:20");
        using var work = new TempDir();
        // Lines that begin with a dot are written piece by piece: the connection's buffer holds bytes when the reset comes.
        // About 8 MB, under Bridge:MaxMessageBytes.
        await File.WriteAllTextAsync(work["large.eml"], "Subject: large\n\n" + string.Concat(Enumerable.Repeat(".a line that begins with a dot\n", 250_000)));

        for (var i = 0; i < 2; i++)
        {
            var started = System.Diagnostics.Stopwatch.StartNew();
            var result = await Swaks.SendAsync(s.Port, Alice, dataFile: work["large.eml"]);
            Assert.StartsWith("451 4.4.1 ", result.FinalReply, StringComparison.Ordinal);
            Assert.DoesNotContain("no connection within", result.FinalReply, StringComparison.Ordinal);
            // Not "outcome unknown": the reset came while the message was being written (8 MB: more than the socket
            // buffers hold), so the failing write, and the connection's disposal after it, were exercised.
            Assert.DoesNotContain("outcome unknown", result.FinalReply, StringComparison.Ordinal);
            Assert.True(started.Elapsed < TimeSpan.FromSeconds(15), $"message {i + 1} took {started.Elapsed}");
        }
        Assert.DoesNotContain(s.Bridge.Logs.Lines, l => l.Contains("unexpected failure", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_store_that_hangs_up_after_the_last_bdat_chunk_gets_the_message_once()
    {
        using var store = await ScriptedStore.StartAsync("bdat-drop");
        await using var s = await BridgeToAsync(store.Port, "Lmtp");

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("451 4.4.1 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Contains("outcome unknown", result.FinalReply, StringComparison.Ordinal);
        await Task.Delay(1000);
        Assert.Equal(1, store.Received);
    }

    [Theory]
    [InlineData("rcpt-garbage", "550 5.1.1 bad??? user")]
    [InlineData("rcpt-utf8", "550 5.2.1 Boite fermee")]
    public async Task A_stores_reply_text_reaches_the_client_as_clean_ascii(string scenario, string expected)
    {
        using var store = await ScriptedStore.StartAsync(scenario);
        await using var s = await BridgeToAsync(store.Port, "Lmtp");

        var (session, _) = await RawSmtp.ConnectAsync(s.Port);
        await session.CommandAsync("EHLO x");
        await session.CommandAsync("MAIL FROM:<a@example.org>");
        await session.CommandAsync($"RCPT TO:<{Alice}>");
        await session.CommandAsync("DATA");
        await session.SendAsync("Subject: x\r\n\r\nbody\r\n.");
        var reply = await session.ReadReplyAsync();
        session.Dispose();

        Assert.Equal(expected, reply);
        Assert.All(reply, c => Assert.InRange(c, ' ', '~'));
    }

    [Fact]
    public async Task A_354_as_the_final_reply_is_an_unknown_outcome_not_a_local_error()
    {
        using var store = await ScriptedStore.StartAsync("final-354");
        await using var s = await BridgeToAsync(store.Port, "Lmtp");

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("451 4.4.1 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Contains("354 more please", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(1, store.Received);
        Assert.DoesNotContain(s.Bridge.Logs.Lines, l => l.Contains("unexpected failure", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_354_to_rcpt_is_a_protocol_error_4_5_0()
    {
        using var store = await ScriptedStore.StartAsync("rcpt-354");
        await using var s = await BridgeToAsync(store.Port, "Lmtp", "Bridge:Retry:MaxAttempts=2");

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("451 4.5.0 Mail store protocol error: unexpected reply to RCPT: 354 what", result.FinalReply, StringComparison.Ordinal);
        Assert.Equal(0, store.Received);
    }

    [Fact]
    public async Task A_full_mailbox_452_4_2_2_goes_back_at_once_other_4xx_are_retried_and_every_attempt_is_logged()
    {
        using (var full = await ScriptedStore.StartAsync("rcpt-full"))
        {
            await using var s = await BridgeToAsync(full.Port, "Lmtp", "Bridge:Retry:MaxAttempts=4");
            var result = await Swaks.SendAsync(s.Port, Alice);
            Assert.StartsWith("452 4.2.2 Mailbox full", result.FinalReply, StringComparison.Ordinal);
            Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains("attempts=1,", StringComparison.Ordinal));
        }
        using (var flaky = await ScriptedStore.StartAsync("rcpt-451"))
        {
            await using var s = await BridgeToAsync(flaky.Port, "Lmtp", "Bridge:Retry:MaxAttempts=3");
            var result = await Swaks.SendAsync(s.Port, Alice);
            Assert.StartsWith("451 4.3.0 Temporary lookup failure", result.FinalReply, StringComparison.Ordinal);
            var failed = s.Bridge.Logs.Lines.Where(l => l.Contains("deferred by the store", StringComparison.Ordinal)).ToList();
            Assert.Equal(3, failed.Count);
            Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains("attempts=3,", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task An_attempt_that_times_out_is_logged_as_a_failed_attempt()
    {
        using var silent = await ScriptedStore.StartAsync("silent");
        await using var s = await BridgeToAsync(silent.Port, "Lmtp", "Bridge:Retry:MaxAttempts=2", "Bridge:Retry:AttemptTimeout=00:00:01",
            "Bridge:Retry:Budget=00:00:10");

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("451 4.4.1 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains("attempt 1 failed: no answer within 1 s", StringComparison.Ordinal));
        Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains("attempt 2 failed: no answer within 1 s", StringComparison.Ordinal));
    }
}
