// Job: drive Bridge with the real swaks client, as a mail admin does.
// Failure: swaks missing -> the install command; the result keeps swaks' transcript for assertions.
using System.Text.RegularExpressions;

namespace Bridge.Tests.Support;

public sealed partial record SwaksResult(int ExitCode, string Transcript)
{
    [GeneratedRegex(@"^<(?:-|~|\*\*)\s+(\d{3})[ -](.*)$", RegexOptions.Multiline)]
    private static partial Regex ReplyLine();

    /// <summary>The server's last reply before QUIT's (the answer to DATA, or the refusal that ended it).</summary>
    public string FinalReply
    {
        get
        {
            var replies = ReplyLine().Matches(Transcript).Select(m => m.Groups[1].Value + " " + m.Groups[2].Value).ToList();
            var last = replies.FindLastIndex(r => !r.StartsWith("221 ", StringComparison.Ordinal));
            return last >= 0 ? replies[last] : "(no reply)";
        }
    }
}

public static class Swaks
{
    /// <param name="from">"" sends the null sender MAIL FROM:&lt;&gt;.</param>
    /// <param name="dataFile">The message; swaks sends it with CRLF line ends. Without a final newline in the
    /// file the message ends exactly with its last line (swaks adds the CRLF before ".").</param>
    public static async Task<SwaksResult> SendAsync(int port, string to, string from = "sender@example.org",
        string? dataFile = null, string? body = null, IEnumerable<string>? extra = null, TimeSpan? timeout = null)
    {
        var swaks = Peers.Require("swaks", "swaks");
        var args = new List<string> { "--server", "127.0.0.1", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--to", to, "--from", from.Length == 0 ? "<>" : from, "--helo", "client.test", "--timeout", "120" };
        if (dataFile is not null)
        {
            args.AddRange(["--data", dataFile]);
        }
        if (body is not null)
        {
            args.AddRange(["--body", body]);
        }
        if (extra is not null)
        {
            args.AddRange(extra);
        }
        var result = await Proc.RunAsync(swaks, args, timeout: timeout ?? TimeSpan.FromSeconds(150));
        return new SwaksResult(result.ExitCode, result.Output);
    }
}
