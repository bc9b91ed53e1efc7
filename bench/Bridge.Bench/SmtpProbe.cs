// Job: a minimal SMTP/LMTP client that times each transaction from the end of DATA (the "." line sent) to the
// reply, which is the time the server spends delivering: used for the fixed-rate latency run, the 1 GB
// mailbox run and the 25 MB message.
// Failure: a reply other than 2xx/3xx where one is expected throws with the reply.
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Bridge.Bench;

internal sealed class SmtpProbe : IDisposable
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;

    private SmtpProbe(TcpClient client)
    {
        _client = client;
        _stream = client.GetStream();
        _reader = new StreamReader(_stream, Encoding.Latin1);
    }

    public static async Task<SmtpProbe> ConnectAsync(int port, bool lmtp)
    {
        var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync("127.0.0.1", port);
        var probe = new SmtpProbe(client);
        await probe.ExpectAsync("220");
        await probe.CommandAsync((lmtp ? "LHLO" : "EHLO") + " client.test", "250");
        return probe;
    }

    /// <summary>One transaction; returns the time from the end of DATA to the reply.</summary>
    public async Task<TimeSpan> SendAsync(string recipient, byte[] message)
    {
        await CommandAsync("MAIL FROM:<bench@client.test>", "250");
        await CommandAsync($"RCPT TO:<{recipient}>", "250");
        await CommandAsync("DATA", "354");
        await _stream.WriteAsync(message);
        var clock = Stopwatch.StartNew();
        await _stream.WriteAsync(".\r\n"u8.ToArray());
        await ExpectAsync("250");
        return clock.Elapsed;
    }

    /// <summary>A message of about <paramref name="bytes"/> bytes: headers, then 76-character lines, CRLF, ending in CRLF.</summary>
    public static byte[] Message(int bytes, string subject)
    {
        var text = new StringBuilder()
            .Append("From: <bench@client.test>\r\nTo: <bench@bench.test>\r\n")
            .Append("Subject: ").Append(subject).Append("\r\nMessage-Id: <").Append(Guid.NewGuid().ToString("N")).Append("@client.test>\r\n\r\n");
        var line = new string('x', 76) + "\r\n";
        while (text.Length + line.Length <= bytes)
        {
            text.Append(line);
        }
        return Encoding.ASCII.GetBytes(text.ToString());
    }

    private async Task CommandAsync(string command, string expected)
    {
        await _stream.WriteAsync(Encoding.ASCII.GetBytes(command + "\r\n"));
        await ExpectAsync(expected);
    }

    private async Task ExpectAsync(string code)
    {
        while (true)
        {
            var line = await _reader.ReadLineAsync() ?? throw new IOException("connection closed");
            if (!line.StartsWith(code, StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"expected {code}, got: {line}");
            }
            if (line.Length < 4 || line[3] != '-')
            {
                return;
            }
        }
    }

    public void Dispose()
    {
        try
        {
            _stream.Write("QUIT\r\n"u8);
        }
        catch (IOException)
        {
        }
        _reader.Dispose();
        _client.Dispose();
    }
}
