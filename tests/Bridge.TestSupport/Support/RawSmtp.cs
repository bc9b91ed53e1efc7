// Job: a bare SMTP or LMTP client over a TCP or Unix socket, for what swaks cannot do: hold sessions open, send exact
// bytes, read the reply to each line.
// Failure: a reply that does not come within 30 s fails the test.
using System.Net.Sockets;
using System.Text;

namespace Bridge.Tests.Support;

public sealed class RawSmtp : IDisposable
{
    private readonly Socket _client;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;

    private RawSmtp(Socket client)
    {
        _client = client;
        _stream = new NetworkStream(client, ownsSocket: false);
        _reader = new StreamReader(_stream, Encoding.Latin1);
    }

    public static async Task<(RawSmtp Session, string Greeting)> ConnectAsync(int port)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true }; // each line leaves at once, as an MTA's would
        await client.ConnectAsync(System.Net.IPAddress.Loopback, port);
        var session = new RawSmtp(client);
        return (session, await session.ReadReplyAsync());
    }

    /// <summary>A session on a Unix socket (LMTP). Connecting fails as the file system says (SocketException).</summary>
    public static async Task<(RawSmtp Session, string Greeting)> ConnectUnixAsync(string path)
    {
        var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await client.ConnectAsync(new UnixDomainSocketEndPoint(path));
        }
        catch
        {
            client.Dispose();
            throw;
        }
        var session = new RawSmtp(client);
        return (session, await session.ReadReplyAsync());
    }

    /// <summary>The full last line of the next reply ("250 2.0.0 Ok"), or "(closed)" when the server hung up.</summary>
    public async Task<string> ReadReplyAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            string? line;
            try
            {
                line = await _reader.ReadLineAsync(timeout.Token);
            }
            catch (IOException)
            {
                return "(closed)";
            }
            if (line is null)
            {
                return "(closed)";
            }
            if (line.Length < 4 || line[3] != '-')
            {
                return line;
            }
        }
    }

    public async Task<string> CommandAsync(string line)
    {
        await SendAsync(line);
        return await ReadReplyAsync();
    }

    public async Task SendAsync(string line)
    {
        await _stream.WriteAsync(Encoding.Latin1.GetBytes(line + "\r\n"));
        await _stream.FlushAsync();
    }

    /// <summary>The next reply line, or null when none comes within <paramref name="wait"/>.</summary>
    public async Task<string?> TryReadReplyAsync(TimeSpan wait)
    {
        _pendingLine ??= _reader.ReadLineAsync();
        if (await Task.WhenAny(_pendingLine, Task.Delay(wait)) != _pendingLine)
        {
            return null;
        }
        try
        {
            return await _pendingLine ?? "(closed)";
        }
        catch (IOException)
        {
            return "(closed)";
        }
        finally
        {
            _pendingLine = null;
        }
    }

    private Task<string?>? _pendingLine;

    /// <summary>Bytes exactly as given (no CRLF added).</summary>
    public async Task SendRawAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
    }

    public void Dispose()
    {
        _reader.Dispose();
        _client.Dispose();
    }
}
