// Job: the soak's clients: sessions into the two Postfix fronts (SMTP relay and LMTP), each message to one to three
// distinct users named as the user, a +tag address or the alias of all three, recorded in the ledger once the
// front answered 250 to its DATA (from then on it must arrive; a refusal or a broken session is only counted).
// Failure: a front that refuses or drops is counted, never thrown; the loop ends when its token is cancelled.
using Bridge.Tests.Support;

namespace Bridge.Soak;

internal static class Load
{
    public static async Task RunAsync(SoakWorld world, Ledger ledger, string prefix, int seed, CancellationToken stop)
    {
        var random = new Random(seed);
        var n = 0;
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(random.Next(100, 700), CancellationToken.None);
            var viaLmtp = random.Next(10) < 3;
            var front = viaLmtp ? world.LmtpFront : world.SmtpFront;
            var (recipients, users) = Recipients(random);
            var id = $"{prefix}-{n++}";
            var message = SoakMessage.Build(id, recipients, SoakMessage.Size(random), random);
            try
            {
                var (session, greeting) = await RawSmtp.ConnectAsync(front.SmtpPort);
                using (session)
                {
                    if (!greeting.StartsWith("220", StringComparison.Ordinal))
                    {
                        ledger.Refusal("greeting " + greeting[..Math.Min(3, greeting.Length)]);
                        continue;
                    }
                    await session.CommandAsync("EHLO soak.client");
                    var ok = (await session.CommandAsync("MAIL FROM:<sender@example.org> BODY=8BITMIME")).StartsWith("250", StringComparison.Ordinal);
                    foreach (var recipient in recipients)
                    {
                        ok &= (await session.CommandAsync($"RCPT TO:<{recipient}>")).StartsWith("250", StringComparison.Ordinal);
                    }
                    if (!ok || !(await session.CommandAsync("DATA")).StartsWith("354", StringComparison.Ordinal))
                    {
                        ledger.Refusal("envelope");
                        continue;
                    }
                    var sent = DateTimeOffset.UtcNow;
                    await session.SendRawAsync(SoakMessage.ForData(message));
                    var reply = await session.ReadReplyAsync();
                    if (reply.StartsWith("250", StringComparison.Ordinal))
                    {
                        ledger.Sent[id] = new SentMessage(id, users, SoakMessage.Fingerprint(message, fromMboxrd: false), sent, viaLmtp ? "lmtp" : "smtp", message.Length);
                    }
                    else
                    {
                        ledger.Refusal("data " + reply[..Math.Min(3, reply.Length)]);
                    }
                    await session.SendAsync("QUIT");
                }
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
            {
                ledger.Refusal("front connection");
            }
        }
    }

    /// <summary>One to three distinct users, each named one way: the user, user+tag, or (for all three) the alias.</summary>
    private static (IReadOnlyList<string> Recipients, IReadOnlyList<string> Users) Recipients(Random random)
    {
        if (random.Next(10) == 0)
        {
            return ([$"{SoakWorld.Alias}@{SoakWorld.Domain}"], SoakWorld.Users);
        }
        var users = SoakWorld.Users.OrderBy(_ => random.Next()).Take(random.Next(1, 4)).ToList();
        var recipients = users.Select(u => random.Next(4) == 0 ? $"{u}+tag{random.Next(100)}@{SoakWorld.Domain}" : $"{u}@{SoakWorld.Domain}").ToList();
        return (recipients, users);
    }

    /// <summary>Clients that open a session to Bridge itself and then say nothing for a while (holding a slot).</summary>
    public static async Task SlowClientsAsync(SoakWorld world, Ledger ledger, int seed, CancellationToken stop)
    {
        var random = new Random(seed);
        while (!stop.IsCancellationRequested)
        {
            var start = DateTimeOffset.UtcNow;
            try
            {
                var (session, _) = await RawSmtp.ConnectAsync(world.BridgePort);
                using (session)
                {
                    await session.SendAsync("EHLO slow.client");
                    await Task.Delay(TimeSpan.FromSeconds(random.Next(5, 20)), stop);
                }
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
            {
                // Bridge killed or restarting, or the run ends: the next slow client tries again
            }
            ledger.Fault("slow client", start, DateTimeOffset.UtcNow);
            await Task.Delay(random.Next(500, 3000), CancellationToken.None);
        }
    }
}
