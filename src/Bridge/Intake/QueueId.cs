// Job: a short id per accepted message, unique within this host, shown in replies, Received and logs.
// Failure: none.
namespace Bridge.Intake;

internal static class QueueId
{
    private static int _counter;

    public static string Next()
    {
        var millis = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() & 0xFFFFFFFFFFFL; // 44 bits
        var count = (uint)Interlocked.Increment(ref _counter) & 0xFFFFF;              // 20 bits
        return ((millis << 20) | count).ToString("X16", System.Globalization.CultureInfo.InvariantCulture);
    }
}
