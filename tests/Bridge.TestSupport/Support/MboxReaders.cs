// Job: read an mbox back with real readers that are not Bridge: Python's mailbox module and procmail's formail.
// Failure: a reader that cannot parse the file fails the test with the reader's own error.
using System.Text;
using System.Text.Json;

namespace Bridge.Tests.Support;

public sealed record MboxMessage(string FromLine, string? MessageId, string? ReturnPath, string? OriginalTo,
    string? DeliveredTo, byte[] Raw)
{
    /// <summary>The body as the reader returns it: everything after the first empty line.</summary>
    public byte[] Body
    {
        get
        {
            var at = Raw.AsSpan().IndexOf("\n\n"u8);
            return at < 0 ? [] : Raw[(at + 2)..];
        }
    }

    public string BodyText => Encoding.UTF8.GetString(Body);
}

public static class MboxReaders
{
    private const string PythonReader = """
        import mailbox, json, sys, base64
        mb = mailbox.mbox(sys.argv[1], create=False)
        out = []
        def text(value):
            return None if value is None else str(value)  # a header with 8-bit bytes (RFC 6532) comes as a Header object
        for key in mb.iterkeys():
            msg = mb.get_message(key)
            out.append({"from": msg.get_from(), "messageId": text(msg.get("Message-ID")), "returnPath": text(msg.get("Return-Path")),
                        "originalTo": text(msg.get("X-Original-To")), "deliveredTo": text(msg.get("Delivered-To")),
                        "raw": base64.b64encode(mb.get_bytes(key)).decode()})
        print(json.dumps(out))
        """;

    public static async Task<IReadOnlyList<MboxMessage>> PythonMailboxAsync(string path)
    {
        var python = Peers.Require("python3", "python3");
        var result = await Proc.RunAsync(python, ["-c", PythonReader, path]);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"python mailbox could not read {path}: {result.Stderr}");
        }
        using var json = JsonDocument.Parse(result.Stdout);
        return json.RootElement.EnumerateArray().Select(e => new MboxMessage(
            e.GetProperty("from").GetString() ?? "",
            e.GetProperty("messageId").GetString(),
            e.GetProperty("returnPath").GetString(),
            e.GetProperty("originalTo").GetString(),
            e.GetProperty("deliveredTo").GetString(),
            Convert.FromBase64String(e.GetProperty("raw").GetString() ?? ""))).ToList();
    }

    /// <summary>Message-IDs of the messages formail (procmail) splits the mbox into.</summary>
    public static async Task<IReadOnlyList<string>> FormailMessageIdsAsync(string path)
    {
        var formail = Peers.Require("formail", "procmail");
        var bytes = await File.ReadAllBytesAsync(path);
        // The child drains its message: otherwise formail gets EPIPE on large bodies and exits 74 on a sound mbox.
        var result = await Proc.RunAsync(formail, ["-s", "sh", "-c", "formail -czxMessage-ID:; cat >/dev/null"], stdinBytes: bytes);
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"formail could not split {path}: {result.Stderr}");
        }
        return result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }
}
