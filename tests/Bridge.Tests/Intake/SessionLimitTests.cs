using Bridge.Tests.Support;

namespace Bridge.Tests.Intake;

/// <summary>Bridge:MaxConnections, AllowedClients, MaxRecipients, MaxReceivedHeaders and CommandTimeout.</summary>
public class SessionLimitTests
{
    private const string Alice = "alice@" + SpoolScenario.Domain;

    [Fact]
    public async Task Connections_beyond_the_limit_get_421_4_7_0_and_a_freed_slot_is_usable_again()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:MaxConnections=2");
        var (first, greeting) = await RawSmtp.ConnectAsync(s.Port);
        var (second, _) = await RawSmtp.ConnectAsync(s.Port);
        Assert.StartsWith("220 ", greeting, StringComparison.Ordinal);

        var (third, refused) = await RawSmtp.ConnectAsync(s.Port);
        Assert.Equal("421 4.7.0 Too many connections, try again later", refused);
        Assert.Equal("(closed)", await third.ReadReplyAsync());
        third.Dispose();

        Assert.StartsWith("221 ", await first.CommandAsync("QUIT"), StringComparison.Ordinal);
        first.Dispose();
        await Eventually.WaitAsync(async () =>
        {
            var (again, reply) = await RawSmtp.ConnectAsync(s.Port);
            again.Dispose();
            return reply.StartsWith("220 ", StringComparison.Ordinal);
        }, 10);
        second.Dispose();
        Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains("Bridge:MaxConnections (421 4.7.0)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_client_outside_AllowedClients_gets_554_5_7_1_and_is_logged()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:AllowedClients:0=192.0.2.0/24");

        var (session, reply) = await RawSmtp.ConnectAsync(s.Port);
        session.Dispose();

        Assert.Equal("554 5.7.1 127.0.0.1 is not allowed to connect (Bridge:AllowedClients)", reply);
        Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains("refused connection from 127.0.0.1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Recipients_beyond_the_limit_get_452_4_5_3_and_the_others_are_delivered()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:MaxRecipients=2");

        var result = await Swaks.SendAsync(s.Port, $"{Alice},bob@{SpoolScenario.Domain},bridgetest1@{SpoolScenario.Domain}");

        Assert.Contains("452 4.5.3 Too many recipients (at most 2 per message)", result.Transcript, StringComparison.Ordinal);
        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.BobMailbox));
    }

    [Fact]
    public async Task Too_many_received_headers_is_a_loop_554_5_4_6_and_nothing_is_written()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:MaxReceivedHeaders=3");
        string[] received = [.. Enumerable.Range(0, 4).SelectMany(i => new[] { "--add-header", $"Received: from hop{i} by hop{i + 1}" })];

        var result = await Swaks.SendAsync(s.Port, Alice, extra: received);

        Assert.StartsWith("554 5.4.6 Too many Received headers (4)", result.FinalReply, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(s.Spool.Path));
    }

    [Fact]
    public async Task An_idle_session_is_closed_with_421_4_4_2_after_CommandTimeout_but_a_busy_one_is_not()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:CommandTimeout=00:00:02");
        var (busy, _) = await RawSmtp.ConnectAsync(s.Port);
        for (var i = 0; i < 4; i++)
        {
            Assert.StartsWith("250 ", await busy.CommandAsync("NOOP"), StringComparison.Ordinal); // 4 x 1 s > the timeout
            await Task.Delay(1000);
        }
        busy.Dispose();

        var (idle, _) = await RawSmtp.ConnectAsync(s.Port);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal("421 4.4.2 Idle timeout, closing connection", await idle.ReadReplyAsync());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"closed after {clock.Elapsed}, the limit is 2 s");
        idle.Dispose();
    }
}
