using Bridge.Delivery.Spool;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>What an MboxRecord writes, collected in memory: the bytes an append would put in a mailbox.</summary>
internal sealed class RecordBytes : IRecordSink
{
    public MemoryStream Bytes { get; } = new();

    public int Write(ReadOnlySpan<byte> bytes)
    {
        Bytes.Write(bytes);
        return 0;
    }

    public static byte[] Of(MboxRecord record)
    {
        var sink = new RecordBytes();
        record.WriteTo(sink);
        return sink.Bytes.ToArray();
    }
}
