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

    /// <summary>A client that sends one byte of a command every 300 ms (about 3 bytes/s): it holds its slot for ever
    /// without ever being idle.</summary>
    private static async Task<string> DribbleAsync(int port, CancellationToken stop)
    {
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, port);
        var stream = client.GetStream();
        var reader = new StreamReader(stream, System.Text.Encoding.Latin1);
        var replies = new List<string> { await reader.ReadLineAsync(stop) ?? "(closed)" };
        await stream.WriteAsync("EHLO slow.test\r\n"u8.ToArray(), stop);
        string? line;
        while ((line = await reader.ReadLineAsync(stop)) is not null && line.StartsWith("250-", StringComparison.Ordinal))
        {
        }
        var read = reader.ReadLineAsync(stop).AsTask();
        foreach (var b in "NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP\r\n"u8.ToArray())
        {
            if (read.IsCompleted)
            {
                break;
            }
            try
            {
                await stream.WriteAsync(new[] { b }, stop);
                await Task.Delay(300, stop);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException)
            {
                break;
            }
        }
        try
        {
            return await read ?? "(closed)";
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            return "(closed)";
        }
    }

    [Fact]
    public async Task When_slow_clients_hold_every_slot_a_new_client_takes_the_slowest_ones_slot_and_is_served()
    {
        await using var s = await SpoolScenario.StartAsync("Bridge:MaxConnections=4", "Bridge:SlowClientTimeout=00:00:01");
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var slow = Enumerable.Range(0, 4).Select(_ => DribbleAsync(s.Port, stop.Token)).ToList();
        await Task.Delay(2500); // every slot is taken, and each has been slow for longer than SlowClientTimeout

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Single(await MboxReaders.PythonMailboxAsync(s.AliceMailbox));
        var first = await Task.WhenAny(slow);
        Assert.Equal("421 4.4.2 Too slow while every connection slot is in use, closing connection", await first);
        Assert.Contains(s.Bridge.Logs.Lines, l => l.Contains("gave its slot to 127.0.0.1", StringComparison.Ordinal));
        await stop.CancelAsync();
    }

    [Fact]
    public async Task Clients_holding_large_unfinished_messages_are_bounded_together_and_a_small_message_is_served()
    {
        const int sessions = 20;
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var port = FreePort.Next();
        await File.WriteAllTextAsync(dir["appsettings.json"], $$"""
            { "Bridge": { "Listen": { "Port": {{port}} }, "LocalDomains": [ "{{SpoolScenario.Domain}}" ], "MaxBytesInFlight": 33554432,
              "Spool": { "Directory": "{{spool.Path}}", "JournalDirectory": "{{dir["journal"]}}" } } }
            """);
        await using var bridge = await BridgeProcess.StartAsync(dir, null);
        var chunk = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat(new string('m', 998) + "\r\n", 64)));
        var clients = new List<RawSmtp>();
        var held = 0;
        for (var i = 0; i < sessions; i++)
        {
            var (session, _) = await RawSmtp.ConnectAsync(port);
            clients.Add(session);
            await session.CommandAsync("EHLO heavy.test");
            await session.CommandAsync("MAIL FROM:<heavy@example.org>");
            await session.CommandAsync($"RCPT TO:<{TestAccounts.Alice}@{SpoolScenario.Domain}>");
            Assert.StartsWith("354 ", await session.CommandAsync("DATA"), StringComparison.Ordinal);
            try
            {
                for (var sent = 0; sent < 20_000_000; sent += chunk.Length) // 20 MB, then the client stalls before the final dot
                {
                    await session.SendRawAsync(chunk);
                }
            }
            catch (IOException)
            {
                // refused while sending: its reply is read below
            }
            var reply = await session.TryReadReplyAsync(TimeSpan.FromSeconds(2));
            if (reply is null)
            {
                held++; // Bridge holds this one's 20 MB
            }
            else
            {
                Assert.Equal("452 4.3.1 Too much mail in transit (Bridge:MaxBytesInFlight), try again later", reply);
            }
        }
        var rss = ProcessRss(bridge.Pid);

        var result = await Swaks.SendAsync(port, $"{TestAccounts.Alice}@{SpoolScenario.Domain}");

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        Assert.InRange(held, 1, 2); // 32 MiB budget + 1 MiB each: one or two unfinished 20 MB messages, never twenty
        Assert.True(rss < 350L << 20, $"Bridge's RSS reached {rss >> 20} MiB with {sessions} clients each sending an unfinished 20 MB message");
        clients.ForEach(c => c.Dispose());
    }

    private static long ProcessRss(int pid)
    {
        var line = File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }
}
