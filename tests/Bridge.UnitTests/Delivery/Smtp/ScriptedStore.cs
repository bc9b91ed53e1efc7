using System.Text;
using System.Threading.Channels;

namespace Bridge.UnitTests.Delivery.Smtp;

/// <summary>The store's side of an SMTP/LMTP session, played by a test in-process: the client's end is this Stream. What
/// the client writes is read by the script line by line (or byte by byte); each <see cref="Send"/> reaches the client
/// as one read of its own, so a reply can be split anywhere; <see cref="Cut"/> is an orderly close (reads end),
/// <see cref="Reset"/> a reset (reads throw IOException). Nothing here touches a socket.</summary>
internal sealed class ScriptedStore : Stream
{
    // Markers, told apart by reference (never delivered as bytes).
    private static readonly byte[] End = [0];
    private static readonly byte[] Broken = [1];

    private readonly Channel<byte[]> _toClient = Channel.CreateUnbounded<byte[]>();
    private readonly Channel<byte[]> _fromClient = Channel.CreateUnbounded<byte[]>();
    private readonly MemoryStream _written = new();
    private byte[] _current = [];
    private int _offset;
    private bool _ended;
    private bool _broken;
    private byte[] _inbox = [];
    private int _inboxOffset;

    /// <summary>Time any step of a script (or the client) may wait before the test fails rather than hangs.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    /// <summary>Everything the client has written so far, as ASCII.</summary>
    public string Written
    {
        get
        {
            lock (_written)
            {
                return Encoding.ASCII.GetString(_written.ToArray());
            }
        }
    }

    public void Send(string text) => _toClient.Writer.TryWrite(Encoding.ASCII.GetBytes(text));

    /// <summary>Each line as one reply line (CRLF added), all in one read.</summary>
    public void Reply(params string[] lines) => Send(string.Concat(lines.Select(l => l + "\r\n")));

    public void Cut() => _toClient.Writer.TryWrite(End);

    public void Reset() => _toClient.Writer.TryWrite(Broken);

    /// <summary>The greeting and the answer to EHLO/LHLO, offering <paramref name="extensions"/>.</summary>
    public async Task GreetAsync(params string[] extensions)
    {
        Reply("220 store.example ESMTP");
        var hello = await LineAsync();
        Assert.Matches("^(EHLO|LHLO) ", hello);
        string[] offered = ["store.example", .. extensions];
        Reply([.. offered.Select((e, i) => i == offered.Length - 1 ? $"250 {e}" : $"250-{e}")]);
    }

    /// <summary>The next line the client wrote, without its CRLF.</summary>
    public async Task<string> LineAsync()
    {
        var line = new List<byte>();
        while (true)
        {
            var b = await ByteAsync();
            if (b == '\n' && line.Count > 0 && line[^1] == '\r')
            {
                return Encoding.ASCII.GetString([.. line.Take(line.Count - 1)]);
            }
            line.Add(b);
        }
    }

    /// <summary>The next <paramref name="count"/> bytes the client wrote.</summary>
    public async Task<byte[]> BytesAsync(long count)
    {
        var bytes = new byte[count];
        for (var i = 0; i < count; i++)
        {
            bytes[i] = await ByteAsync();
        }
        return bytes;
    }

    /// <summary>Lines up to and including the lone "." that ends a DATA message, unstuffed (as a store reads them).</summary>
    public async Task<string> MessageAsync()
    {
        var text = new StringBuilder();
        while (true)
        {
            var line = await LineAsync();
            if (line == ".")
            {
                return text.ToString();
            }
            text.Append(line.StartsWith('.') ? line[1..] : line).Append("\r\n");
        }
    }

    /// <summary>True when the client wrote nothing more within <paramref name="wait"/> (it waits for a reply).</summary>
    public async Task<bool> QuietAsync(TimeSpan wait)
    {
        if (_inboxOffset < _inbox.Length)
        {
            return false;
        }
        using var timeout = new CancellationTokenSource(wait);
        try
        {
            return !await _fromClient.Reader.WaitToReadAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            return true;
        }
    }

    private async Task<byte> ByteAsync()
    {
        while (_inboxOffset >= _inbox.Length)
        {
            using var timeout = new CancellationTokenSource(Patience);
            _inbox = await _fromClient.Reader.ReadAsync(timeout.Token);
            _inboxOffset = 0;
        }
        return _inbox[_inboxOffset++];
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_offset >= _current.Length && !_ended && !_broken)
        {
            var next = await _toClient.Reader.ReadAsync(cancellationToken);
            _ended = ReferenceEquals(next, End);
            _broken = ReferenceEquals(next, Broken);
            (_current, _offset) = (_ended || _broken ? [] : next, 0);
        }
        if (_broken)
        {
            throw new IOException("Connection reset by peer (scripted)");
        }
        var n = Math.Min(buffer.Length, _current.Length - _offset);
        _current.AsMemory(_offset, n).CopyTo(buffer);
        _offset += n;
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <summary>Set: once the client has written this many bytes, every further write fails as a broken connection does
    /// (IOException), like a store that died while the message was being written.</summary>
    public long? FailWritesAfterBytes { get; set; }

    private bool _disposed;

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        // As NetworkStream: a write after the stream was disposed throws ObjectDisposedException.
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (buffer.Length == 0)
        {
            return;
        }
        lock (_written)
        {
            if (FailWritesAfterBytes is { } limit && _written.Length + buffer.Length > limit)
            {
                throw new IOException("Broken pipe (scripted)");
            }
            _written.Write(buffer);
        }
        _fromClient.Writer.TryWrite(buffer.ToArray());
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        Write(buffer.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _disposed = true;
        }
        base.Dispose(disposing);
    }
}
