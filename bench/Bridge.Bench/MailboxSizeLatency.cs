// Job: Bridge's append latency into an empty mbox and into one of 1 GiB (filled with real 10 KB records and
// owned by the user, as years of unread mail would be): 10 KB messages on one connection, alternately to a user
// whose mailbox starts empty (alice) and to one whose mailbox holds the gigabyte (bob), so that both see the same
// moment of the machine (writeback of the fresh gigabyte, other load); median and p99 of end-of-DATA to reply.
// Failure: a refused message throws (SmtpProbe); both mailboxes are removed in any case.
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.Bench;

internal sealed record MailboxSizeResult(LatencyResult Empty, LatencyResult Large, long LargeBytes);

internal static class MailboxSizeLatency
{
    private const int WarmUp = 20;

    public static async Task<MailboxSizeResult> RunAsync(BridgeTarget bridge, int messages, long largeBytes)
    {
        var emptyUser = TestAccounts.Alice;
        var largeUser = TestAccounts.Bob;
        await bridge.ResetAsync();
        try
        {
            await FillAsync(bridge.MailboxOf(largeUser), largeUser, largeBytes);
            var message = SmtpProbe.Message(10 * 1024, "mailbox size");
            using var probe = await SmtpProbe.ConnectAsync(bridge.Port, lmtp: false);
            List<double> empty = [], large = [];
            for (var i = 0; i < messages + WarmUp; i++)
            {
                var toEmpty = await probe.SendAsync($"{emptyUser}@{Target.Domain}", message);
                var toLarge = await probe.SendAsync($"{largeUser}@{Target.Domain}", message);
                if (i >= WarmUp)
                {
                    empty.Add(toEmpty.TotalMilliseconds);
                    large.Add(toLarge.TotalMilliseconds);
                }
            }
            return new MailboxSizeResult(LatencyResult.Of(empty), LatencyResult.Of(large), largeBytes);
        }
        finally
        {
            File.Delete(bridge.MailboxOf(largeUser));
            await bridge.ResetAsync();
        }
    }

    private static async Task FillAsync(string path, string user, long bytes)
    {
        var (uid, gid) = await TestAccounts.EnsureAsync(user);
        var record = System.Text.Encoding.ASCII.GetBytes(
            "From old@example.org  Mon Nov 23 10:00:00 2026\nReturn-Path: <old@example.org>\nSubject: old mail\n\n" +
            string.Concat(Enumerable.Repeat(new string('o', 76) + "\n", 128)) + "\n");
        var chunk = new byte[record.Length * 128];
        for (var i = 0; i < 128; i++)
        {
            record.CopyTo(chunk, i * record.Length);
        }
        await using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            for (long written = 0; written < bytes; written += chunk.Length)
            {
                await file.WriteAsync(chunk);
            }
            file.Flush(flushToDisk: true);
        }
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var fd = Libc.Open(path, Libc.O_WRONLY | Libc.O_CLOEXEC, 0);
        Libc.Fchown(fd, uid, gid);
        Libc.Close(fd);
    }
}
