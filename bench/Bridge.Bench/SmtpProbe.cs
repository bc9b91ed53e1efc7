// Job: time SMTP/LMTP transactions from the end of DATA (the "." line sent) to the reply, which is the time the
// server spends delivering: used for the fixed-rate latency run, the 1 GB mailbox run and the 25 MB message.
// The wire work is the tests' RawSmtp client.
// Failure: a reply other than the expected one throws with the reply.
using System.Diagnostics;
using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Bench;

internal sealed class SmtpProbe : IDisposable
{
    private readonly RawSmtp _smtp;

    private SmtpProbe(RawSmtp smtp) => _smtp = smtp;

    public static async Task<SmtpProbe> ConnectAsync(int port, bool lmtp)
    {
        var (smtp, greeting) = await RawSmtp.ConnectAsync(port);
        var probe = new SmtpProbe(smtp);
        Expect("220", greeting);
        await probe.CommandAsync((lmtp ? "LHLO" : "EHLO") + " client.test", "250");
        return probe;
    }

    /// <summary>One transaction; returns the time from the end of DATA to the reply.</summary>
    public async Task<TimeSpan> SendAsync(string recipient, string message)
    {
        await CommandAsync("MAIL FROM:<bench@client.test>", "250");
        await CommandAsync($"RCPT TO:<{recipient}>", "250");
        await CommandAsync("DATA", "354");
        await _smtp.SendAsync(message);
        var clock = Stopwatch.StartNew();
        await CommandAsync(".", "250");
        return clock.Elapsed;
    }

    /// <summary>A message of about <paramref name="bytes"/> bytes: headers, then 76-character lines, CRLF (the
    /// last line's CRLF is added when it is sent).</summary>
    public static string Message(int bytes, string subject)
    {
        var text = new StringBuilder()
            .Append("From: <bench@client.test>\r\nTo: <bench@bench.test>\r\n")
            .Append("Subject: ").Append(subject).Append("\r\nMessage-Id: <").Append(Guid.NewGuid().ToString("N")).Append("@client.test>\r\n\r\n");
        var line = new string('x', 76) + "\r\n";
        while (text.Length + line.Length <= bytes)
        {
            text.Append(line);
        }
        return text.ToString(0, text.Length - 2);
    }

    private async Task CommandAsync(string command, string expected) => Expect(expected, await _smtp.CommandAsync(command));

    private static void Expect(string code, string reply)
    {
        if (!reply.StartsWith(code, StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"expected {code}, got: {reply}");
        }
    }

    public void Dispose() => _smtp.Dispose();
}
