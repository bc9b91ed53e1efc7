// Job: Bridge's resident memory, each on a freshly started daemon (so earlier loads do not count): its peak
// while 16 sessions deliver (one message per connection, then reused connections), and its peak while one
// 25 MB message is delivered; next to its resident size at rest just before.
// Failure: unreadable /proc entries throw (ProcessMemory).
namespace Bridge.Bench;

internal sealed record MemoryResult(long RestingBytes, long PeakBytes)
{
    public long AddedBytes => PeakBytes - RestingBytes;
}

internal static class MemoryPeaks
{
    public static async Task<MemoryResult> UnderLoadAsync(int messages, int messageBytes)
    {
        await using var bridge = await BridgeTarget.StartSpoolAsync();
        var resting = ProcessMemory.ResidentBytes(bridge.Pid);
        ProcessMemory.ResetPeak(bridge.Pid);
        await SmtpSource.RunAsync(bridge, new LoadShape(16, false, messages, messageBytes));
        await SmtpSource.RunAsync(bridge, new LoadShape(16, true, messages, messageBytes));
        return new MemoryResult(resting, ProcessMemory.PeakResidentBytes(bridge.Pid));
    }

    public static async Task<MemoryResult> OneLargeMessageAsync(int messageBytes)
    {
        await using var bridge = await BridgeTarget.StartSpoolAsync();
        var message = SmtpProbe.Message(messageBytes, "large");
        using var probe = await SmtpProbe.ConnectAsync(bridge.Port, lmtp: false);
        var resting = ProcessMemory.ResidentBytes(bridge.Pid);
        ProcessMemory.ResetPeak(bridge.Pid);
        await probe.SendAsync(bridge.Recipient, message);
        return new MemoryResult(resting, ProcessMemory.PeakResidentBytes(bridge.Pid));
    }
}
