// Job: Bridge's append latency into an empty mbox and into one of 1 GiB (filled with real 10 KB records and
// owned by the user, as years of unread mail would be): sequential 10 KB messages on one connection, median
// and p99 of end-of-DATA to reply for each.
// Failure: a refused message throws (SmtpProbe); the 1 GiB file is removed in any case.
using Bridge.Native;
using Bridge.Tests.Support;

namespace Bridge.Bench;

internal sealed record MailboxSizeResult(LatencyResult Empty, LatencyResult Large, long LargeBytes);

internal static class MailboxSizeLatency
{
    public static async Task<MailboxSizeResult> RunAsync(BridgeTarget bridge, int messages, long largeBytes)
    {
        var empty = await MeasureAsync(bridge, messages);
        try
        {
            await FillAsync(bridge.MailboxPath, largeBytes);
            var large = await MeasureAsync(bridge, messages, keep: true);
            return new MailboxSizeResult(empty, large, largeBytes);
        }
        finally
        {
            File.Delete(bridge.MailboxPath);
        }
    }

    private static async Task<LatencyResult> MeasureAsync(BridgeTarget bridge, int messages, bool keep = false)
    {
        if (!keep)
        {
            await bridge.ResetAsync();
        }
        var message = SmtpProbe.Message(10 * 1024, "mailbox size");
        using var probe = await SmtpProbe.ConnectAsync(bridge.Port, lmtp: false);
        var samples = new List<double>();
        for (var i = 0; i < messages + 20; i++)
        {
            var took = await probe.SendAsync(bridge.Recipient, message);
            if (i >= 20)
            {
                samples.Add(took.TotalMilliseconds);
            }
        }
        return LatencyResult.Of(samples);
    }

    private static async Task FillAsync(string path, long bytes)
    {
        var (uid, gid) = await TestAccounts.EnsureAsync(TestAccounts.Alice);
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
