using System.Diagnostics;
using Bridge.Tests.Support;

namespace Bridge.Tests.EndToEnd;

/// <summary>100 concurrent sessions for 30 s against the daemon: no errors, every message once, memory stable.</summary>
public class LoadTests
{
    [Fact]
    public async Task A_hundred_sessions_for_thirty_seconds_lose_nothing_and_memory_stays_flat()
    {
        string[] users = [TestAccounts.Alice, TestAccounts.Bob, TestAccounts.Carol];
        foreach (var user in users)
        {
            await TestAccounts.EnsureAsync(user);
        }
        using var dir = new TempDir("bridge-daemon");
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        var port = FreePort.Next();
        await File.WriteAllTextAsync(dir["appsettings.json"], $$"""
            { "Bridge": { "Listen": { "Port": {{port}} }, "LocalDomains": [ "{{SpoolScenario.Domain}}" ], "MaxConnections": 200,
              "Spool": { "Directory": "{{spool.Path}}", "JournalDirectory": "{{dir["journal"]}}", "MaxMailboxBytes": 0 } } }
            """);
        await using var bridge = await BridgeProcess.StartAsync(dir, null);

        var errors = new List<string>();
        var sent = new int[100];
        var clock = Stopwatch.StartNew();
        var duration = TimeSpan.FromSeconds(30);
        long rssEarly = 0;
        var sampler = Task.Run(async () =>
        {
            await Task.Delay(TimeSpan.FromSeconds(8));
            rssEarly = Rss(bridge.Pid);
        });
        await Task.WhenAll(Enumerable.Range(0, 100).Select(async session =>
        {
            var (smtp, greeting) = await RawSmtp.ConnectAsync(port);
            using (smtp)
            {
                if (!greeting.StartsWith("220 ", StringComparison.Ordinal))
                {
                    lock (errors) { errors.Add(greeting); }
                    return;
                }
                await smtp.CommandAsync("EHLO load.test");
                while (clock.Elapsed < duration)
                {
                    var to = $"{users[session % users.Length]}@{SpoolScenario.Domain}";
                    var n = sent[session];
                    var replies = new[]
                    {
                        await smtp.CommandAsync("MAIL FROM:<load@example.org>"),
                        await smtp.CommandAsync($"RCPT TO:<{to}>"),
                        await smtp.CommandAsync("DATA"),
                    };
                    await smtp.SendAsync($"Message-Id: <load-{session}-{n}@test>\r\nSubject: load {session} {n}\r\n\r\nbody {session} {n}\r\n.");
                    var final = await smtp.ReadReplyAsync();
                    if (!replies[0].StartsWith("250", StringComparison.Ordinal) || !replies[1].StartsWith("250", StringComparison.Ordinal)
                        || !replies[2].StartsWith("354", StringComparison.Ordinal) || !final.StartsWith("250 2.0.0", StringComparison.Ordinal))
                    {
                        lock (errors) { errors.Add($"{string.Join(" | ", replies)} | {final}"); }
                        return;
                    }
                    sent[session]++;
                }
                await smtp.CommandAsync("QUIT");
            }
        }));
        await sampler;
        var rssLate = Rss(bridge.Pid);

        Assert.Empty(errors);
        var expected = Enumerable.Range(0, 100).SelectMany(s => Enumerable.Range(0, sent[s]).Select(n => $"<load-{s}-{n}@test>")).Order().ToList();
        var delivered = new List<string>();
        foreach (var user in users)
        {
            delivered.AddRange((await MboxReaders.PythonMailboxAsync(spool[user])).Select(m => m.MessageId ?? ""));
        }
        Assert.Equal(expected, delivered.Order().ToList()); // every acknowledged message, exactly once
        Assert.True(expected.Count > 1000, $"only {expected.Count} messages in 30 s");
        Assert.True(rssLate < Math.Max(rssEarly * 3 / 2, rssEarly + (64L << 20)),
            $"RSS grew from {rssEarly >> 20} MiB to {rssLate >> 20} MiB under steady load");
    }

    private static long Rss(int pid)
    {
        var line = File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }
}
