// Job: read one (possibly multi-line) SMTP/LMTP reply from a relay and express it as a DeliveryStatus:
// "550-5.1.1 first\r\n550 5.1.1 second" -> (550, "5.1.1", "first; second"). A reply without an enhanced
// code gets the generic one of its class (X.0.0).
// Failure: a connection closed mid-reply or a malformed reply line throws SmtpConnectionException (transient).
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Bridge.Delivery.Smtp;

/// <summary>The relay could not be talked to (refused, closed, garbled, TLS/auth failure): always transient.</summary>
public sealed class SmtpConnectionException(string message, Exception? inner = null) : Exception(message, inner);

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
        return new DeliveryStatus(code, enhanced ?? $"{code / 100}.0.0", string.Join("; ", texts.Where(t => t.Length > 0)));
    }

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
