// Job: read one (possibly multi-line) SMTP/LMTP reply from a relay and express it as a DeliveryStatus:
// "550-5.1.1 first\r\n550 5.1.1 second" -> (550, "5.1.1", "first; second"). A reply without an enhanced
// code gets the generic one of its class (X.0.0). The text is made clean printable ASCII (RFC 5321 4.2): accents
// are dropped from Latin letters (UTF-8 "Boîte" -> "Boite"), every other character outside 0x20-0x7E becomes "?", so nothing a
// store sends can put control bytes or broken UTF-8 into the reply Bridge gives its client.
// Failure: a connection closed mid-reply or a malformed reply line throws SmtpConnectionException (transient).
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Bridge.Common;

namespace Bridge.Delivery.Smtp;

/// <summary>The relay could not be talked to (refused, closed, garbled, TLS/auth failure): always transient.</summary>
public sealed class SmtpConnectionException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The message was sent completely (final dot, or last BDAT chunk) but its reply never came: the store may
/// or may not have delivered it. Never retried by Bridge (a second copy could arrive); <see cref="Known"/> holds the
/// replies of the recipients that did get one (LMTP), null for the others.</summary>
public sealed class StoreOutcomeUnknownException(string message, IReadOnlyList<DeliveryStatus?> known, Exception? inner = null)
    : Exception(message, inner)
{
    public IReadOnlyList<DeliveryStatus?> Known { get; } = known;
}
internal static partial class SmtpReply
{
    [GeneratedRegex(@"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)", RegexOptions.CultureInvariant)]
    private static partial Regex EnhancedCode();

    public static DeliveryStatus Parse(IReadOnlyList<string> lines)
    {
        var code = int.Parse(lines[0].AsSpan(0, 3), CultureInfo.InvariantCulture);
        string? enhanced = null;
        var texts = new List<string>(lines.Count);
        foreach (var line in lines)
        {
            var text = line.Length > 4 ? line[4..] : "";
            var match = EnhancedCode().Match(text);
            if (match.Success)
            {
                enhanced ??= $"{match.Groups[1].Value}.{match.Groups[2].Value}.{match.Groups[3].Value}";
                text = text[match.Length..];
            }
            texts.Add(text.Trim());
        }
        return new DeliveryStatus(code, enhanced ?? $"{code / 100}.0.0", CleanText(string.Join("; ", texts.Where(t => t.Length > 0))));
    }

    /// <summary>U+00C0..U+017F (Latin-1 Supplement and Latin Extended-A) to the ASCII letter they are written with;
    /// '?' for the few that are no letter. A table, not Unicode normalization: Bridge runs with invariant globalization.</summary>
    private const string LatinBase =
        "AAAAAAACEEEEIIIIDNOOOOO?OUUUUY?saaaaaaaceeeeiiiidnooooo?ouuuuy?yAaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIiIiJjKkkLlLlLlLlLlNnNnNnnNnOoOoOoOoRrRrRrSsSsSsSsTtTtTtUuUuUuUuUuUuWwYyYZzZzZzs";

    /// <summary>Printable ASCII only: accented Latin letters lose their accents, anything else outside 0x20-0x7E becomes '?'.</summary>
    public static string CleanText(string text)
    {
        var clean = true;
        foreach (var c in text)
        {
            clean &= c is >= ' ' and <= '~';
        }
        if (clean)
        {
            return text;
        }
        var builder = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            builder.Append(c switch
            {
                >= ' ' and <= '~' => c,
                >= '\u00C0' and <= '\u017F' => LatinBase[c - '\u00C0'],
                _ => '?',
            });
        }
        return builder.ToString();
    }

    /// <summary>A reply where a final one (2xx, 4xx, 5xx) was due but something else came (e.g. 354 after the message):
    /// the store does not follow the protocol. Temporary, so the MTA keeps the message.</summary>
    public static bool IsFinal(DeliveryStatus reply) => reply.Code is >= 200 and < 300 or >= 400 and < 600;

    public static DeliveryStatus ProtocolError(string what, DeliveryStatus reply) =>
        new(451, "4.5.0", $"Mail store protocol error: unexpected reply to {what}: {reply.Code} {reply.Text}".TrimEnd());

    /// <summary>Reads reply lines until the last one ("ddd text"); each line at most 4 KiB.</summary>
    public static async Task<IReadOnlyList<string>> ReadAsync(LineReader reader, CancellationToken cancellationToken)
    {
        var lines = new List<string>();
        while (true)
        {
            var line = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false)
                       ?? throw new SmtpConnectionException("the store closed the connection");
            if (line.Length < 3 || !char.IsAsciiDigit(line[0]) || !char.IsAsciiDigit(line[1]) || !char.IsAsciiDigit(line[2]) ||
                (line.Length > 3 && line[3] is not (' ' or '-')))
            {
                throw new SmtpConnectionException($"the store sent a malformed reply: {line}");
            }
            lines.Add(line);
            if (line.Length == 3 || line[3] == ' ')
            {
                return lines;
            }
            if (lines.Count > 100)
            {
                throw new SmtpConnectionException("the store sent a reply of more than 100 lines");
            }
        }
    }
}

/// <summary>CRLF-terminated line reader over a stream that may be swapped for TLS.</summary>
internal sealed class LineReader(Stream stream)
{
    private readonly byte[] _buffer = new byte[8192];
    private int _start;
    private int _end;

    public Stream Stream { get; set; } = stream;

    public async Task<string?> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var newline = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (newline >= 0)
            {
                var length = newline - _start;
                if (length > 0 && _buffer[newline - 1] == '\r')
                {
                    length--;
                }
                var line = Encoding.UTF8.GetString(_buffer, _start, length);
                _start = newline + 1;
                return line;
            }
            if (_start > 0)
            {
                Array.Copy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buffer.Length)
            {
                throw new SmtpConnectionException("the store sent a reply line longer than 8 KiB");
            }
            var read = await Stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return null;
            }
            _end += read;
        }
    }
}
