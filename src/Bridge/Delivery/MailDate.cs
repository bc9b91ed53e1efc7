// Job: the RFC 5322 date-time used in trace and report fields, e.g. "Tue, 24 Nov 2026 19:57:21 +0000".
// Failure: none.
using System.Globalization;

namespace Bridge.Delivery;

public static class MailDate
{
    public static string Format(DateTimeOffset time)
    {
        var offset = time.Offset;
        var sign = offset < TimeSpan.Zero ? '-' : '+';
        return string.Create(CultureInfo.InvariantCulture,
            $"{time:ddd, d MMM yyyy HH:mm:ss} {sign}{Math.Abs(offset.Hours):00}{Math.Abs(offset.Minutes):00}");
    }
}
