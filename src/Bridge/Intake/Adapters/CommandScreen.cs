// Job: check the ESMTP parameters of a MAIL or RCPT command line before SmtpServer parses it. SmtpServer throws on
// a repeated parameter (MAIL FROM:<> SIZE=1 SIZE=2, a second SMTPUTF8) or a very long one and closes the connection
// without a reply; it takes SIZE=abc, SIZE=-1, an overflowing SIZE and BODY=FOO as if they were fine; and it drops
// RCPT parameters unseen. Here each gets its RFC reply instead (the texts: Intake/Replies):
//   501 5.5.4  syntax: malformed keyword or value, a parameter over 1000 bytes, a repeated keyword, SIZE that is not
//              1 to 20 digits (RFC 1870), BODY other than 7BIT/8BITMIME (RFC 6152), SMTPUTF8 with a value, DSN's
//              (RFC 3461) RET other than FULL/HDRS, ENVID or ORCPT that is not xtext (or ORCPT without addr-type),
//              NOTIFY other than NEVER or a list of SUCCESS, FAILURE, DELAY;
//   552 5.3.4  SIZE over Bridge:MaxMessageBytes (also when it does not fit in 64 bits);
//   555 5.5.4  a parameter of an extension Bridge does not offer (RFC 5321 4.1.1.11), every RCPT parameter included.
// A refused line is handed on without its parameters (so SmtpServer parses it safely) and the refusal is left for
// RecipientFilter, which answers it in place of SmtpServer's own reply. An accepted RCPT's NOTIFY and ORCPT, which
// SmtpServer would drop, are handed to RecipientFilter the same way (RcptParameters), the line without them.
// Failure: none; a line this does not understand is handed on unchanged for SmtpServer to answer.
using System.Text;
using Bridge.Common;
using Bridge.Delivery;

namespace Bridge.Intake.Adapters;

internal static class CommandScreen
{
    public const int MaxParameterBytes = 1000;

    /// <summary>The line to hand to SmtpServer (null: unchanged) and the refusal to answer (null: none).</summary>
    /// <param name="Smtputf8">For a MAIL line: whether it asked SMTPUTF8 (RFC 6531), which lets the transaction's
    /// addresses be UTF-8; null for other lines.</param>
    public readonly record struct Verdict(byte[]? Replacement, DeliveryStatus? Refusal, IReadOnlyDictionary<string, string>? RcptParameters = null,
        bool? Smtputf8 = null);

    /// <param name="line">One command line including its CRLF.</param>
    /// <param name="smtputf8">The transaction's MAIL asked SMTPUTF8 (for an RCPT line).</param>
    public static Verdict Screen(ReadOnlySpan<byte> line, long maxMessageBytes, bool smtputf8 = false)
    {
        bool mail;
        if (StartsWithIgnoreCase(line, "MAIL "u8))
        {
            mail = true;
        }
        else if (StartsWithIgnoreCase(line, "RCPT "u8))
        {
            mail = false;
        }
        else
        {
            return default;
        }
        var text = Encoding.Latin1.GetString(line).TrimEnd('\n').TrimEnd('\r');
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var word = mail ? "FROM" : "TO";
        if (colon < 0 || !text[5..colon].Trim().Equals(word, StringComparison.OrdinalIgnoreCase))
        {
            return default;
        }
        var open = colon + 1;
        while (open < text.Length && text[open] == ' ')
        {
            open++;
        }
        var close = PathEnd(text, open);
        if (close < 0)
        {
            return default; // no <path>: SmtpServer's syntax error
        }
        var parameters = text[(close + 1)..];
        if (mail)
        {
            smtputf8 = parameters.Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Any(p => p.Equals("SMTPUTF8", StringComparison.OrdinalIgnoreCase) || p.StartsWith("SMTPUTF8=", StringComparison.OrdinalIgnoreCase));
        }
        if (AddressBytesRefusal(line.Slice(open, close - open + 1), smtputf8, mail) is { } badAddress)
        {
            // Handed on as a harmless path, so SmtpServer parses it and RecipientFilter answers the refusal: nothing
            // is ever decoded (into U+FFFD) and written in place of bytes that are not the address the client sent.
            return new Verdict(mail ? "MAIL FROM:<>\r\n"u8.ToArray() : "RCPT TO:<refused@invalid>\r\n"u8.ToArray(), badAddress, Smtputf8: mail ? smtputf8 : null);
        }
        if (parameters.Length == 0)
        {
            return mail ? new Verdict(null, null, Smtputf8: false) : default;
        }
        var rcptParameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var refusal = mail ? CheckMail(parameters, maxMessageBytes) : CheckRcpt(parameters, rcptParameters);
        if (refusal is null && mail)
        {
            return new Verdict(null, null, Smtputf8: smtputf8);
        }
        var bare = Encoding.Latin1.GetBytes($"{text[..(close + 1)]}\r\n");
        return refusal is null ? new Verdict(bare, null, rcptParameters) : new Verdict(bare, refusal, Smtputf8: mail ? false : null);
    }

    /// <summary>An envelope address (the bytes of "&lt;...&gt;") that is not ASCII without SMTPUTF8, or not UTF-8 with it:
    /// 553 5.1.7 (sender) / 553 5.1.3 (recipient), RFC 5321 and RFC 6531.</summary>
    private static DeliveryStatus? AddressBytesRefusal(ReadOnlySpan<byte> path, bool smtputf8, bool mail)
    {
        if (System.Text.Unicode.Utf8.IsValid(path) && (smtputf8 || System.Text.Ascii.IsValid(path)))
        {
            return null;
        }
        var (enhanced, role) = mail ? ("5.1.7", "sender") : ("5.1.3", "recipient");
        return Replies.UnreadableAddress(enhanced, role, smtputf8);
    }

    /// <summary>Index of the '>' that closes the path starting at <paramref name="open"/> ('"' quoting and '\' escapes
    /// inside quotes respected), or -1.</summary>
    private static int PathEnd(string text, int open)
    {
        if (open >= text.Length || text[open] != '<')
        {
            return -1;
        }
        var quoted = false;
        for (var i = open + 1; i < text.Length; i++)
        {
            var c = text[i];
            if (quoted && c == '\\')
            {
                i++;
            }
            else if (c == '"')
            {
                quoted = !quoted;
            }
            else if (c == '>' && !quoted)
            {
                return i;
            }
        }
        return -1;
    }

    private static DeliveryStatus? CheckMail(string parameters, long maxMessageBytes)
    {
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (keyword, value) in Split(parameters, out var syntax))
        {
            if (syntax is not null)
            {
                return syntax;
            }
            if (!seen.Add(keyword))
            {
                return Replies.DuplicateParameter("MAIL", keyword);
            }
            switch (keyword.ToUpperInvariant())
            {
                case "SIZE":
                    if (value is null || value.Length is 0 or > 20 || !value.All(char.IsAsciiDigit))
                    {
                        return Replies.BadSize;
                    }
                    if (!long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var size) ||
                        size > maxMessageBytes)
                    {
                        return Replies.TooBig(maxMessageBytes);
                    }
                    break;
                case "BODY":
                    if (value is not null && value.Equals("BINARYMIME", StringComparison.OrdinalIgnoreCase))
                    {
                        return Replies.BinaryMime;
                    }
                    if (value is null || !(value.Equals("7BIT", StringComparison.OrdinalIgnoreCase) || value.Equals("8BITMIME", StringComparison.OrdinalIgnoreCase)))
                    {
                        return Replies.BadBody;
                    }
                    break;
                case "SMTPUTF8":
                    if (value is not null)
                    {
                        return Replies.Smtputf8WithValue;
                    }
                    break;
                case "RET":
                    if (value is null || !(value.Equals("FULL", StringComparison.OrdinalIgnoreCase) || value.Equals("HDRS", StringComparison.OrdinalIgnoreCase)))
                    {
                        return Replies.BadRet;
                    }
                    break;
                case "ENVID":
                    if (value is null || value.Length > 100 || !Xtext.IsValid(value))
                    {
                        return Replies.BadEnvid;
                    }
                    break;
                default:
                    return Replies.UnsupportedParameter("MAIL", keyword);
            }
        }
        return null;
    }

    private static readonly string[] NotifyWords = ["SUCCESS", "FAILURE", "DELAY"];

    /// <summary>RFC 3461's NOTIFY and ORCPT (into <paramref name="accepted"/>, NOTIFY upper case); anything else is refused.</summary>
    private static DeliveryStatus? CheckRcpt(string parameters, Dictionary<string, string> accepted)
    {
        foreach (var (keyword, value) in Split(parameters, out var syntax))
        {
            if (syntax is not null)
            {
                return syntax;
            }
            if (accepted.ContainsKey(keyword))
            {
                return Replies.DuplicateParameter("RCPT", keyword);
            }
            switch (keyword.ToUpperInvariant())
            {
                case "NOTIFY":
                    var words = value?.ToUpperInvariant().Split(',') ?? [];
                    var valid = words is ["NEVER"] ||
                        (words.Length > 0 && words.All(NotifyWords.Contains) && words.Distinct().Count() == words.Length);
                    if (!valid)
                    {
                        return Replies.BadNotify;
                    }
                    accepted["NOTIFY"] = value!.ToUpperInvariant();
                    break;
                case "ORCPT":
                    var semicolon = value?.IndexOf(';', StringComparison.Ordinal) ?? -1;
                    if (value is null || semicolon <= 0 || !value[..semicolon].All(c => char.IsAsciiLetterOrDigit(c) || c == '-') ||
                        value.Length - semicolon - 1 is 0 or > 500 || !Xtext.IsValid(value[(semicolon + 1)..]))
                    {
                        return Replies.BadOrcpt;
                    }
                    accepted["ORCPT"] = value;
                    break;
                default:
                    return Replies.UnsupportedParameter("RCPT", keyword);
            }
        }
        return null;
    }

    /// <summary>esmtp-param *(SP esmtp-param): keyword [= value]; yields nothing more once <paramref name="syntax"/> is set.</summary>
    private static List<(string Keyword, string? Value)> Split(string parameters, out DeliveryStatus? syntax)
    {
        syntax = null;
        var list = new List<(string, string?)>();
        foreach (var parameter in parameters.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (parameter.Length > MaxParameterBytes)
            {
                syntax = Replies.ParameterTooLong(MaxParameterBytes);
                return [("", null)];
            }
            var equals = parameter.IndexOf('=', StringComparison.Ordinal);
            var keyword = equals < 0 ? parameter : parameter[..equals];
            var value = equals < 0 ? null : parameter[(equals + 1)..];
            if (keyword.Length == 0 || !char.IsAsciiLetterOrDigit(keyword[0]) || !keyword.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            {
                syntax = Replies.BadKeyword;
                return [("", null)];
            }
            if (value is not null && (value.Length == 0 || value.Any(c => c is < '!' or > '~' or '=')))
            {
                syntax = Replies.BadValue(keyword);
                return [("", null)];
            }
            list.Add((keyword, value));
        }
        return list;
    }

    private static bool StartsWithIgnoreCase(ReadOnlySpan<byte> line, ReadOnlySpan<byte> prefix)
    {
        if (line.Length < prefix.Length)
        {
            return false;
        }
        for (var i = 0; i < prefix.Length; i++)
        {
            if ((line[i] | 0x20) != (prefix[i] | 0x20))
            {
                return false;
            }
        }
        return true;
    }
}
