// Job: an envelope address's local part in RFC 5321 syntax, both ways. Format writes one (local part + domain, as
// SmtpServer hands them over: a quoted local part arrives without its quotes and escapes) back in valid syntax: a
// local part that is a Dot-string stays as it is, any other is a Quoted-string with '"' and '\' escaped: "john
// doe"@x.org stays "john doe"@x.org when relayed to the store and in Return-Path. A local part with a character no
// Quoted-string can carry (controls, DEL) cannot be written at all and is refused at MAIL/RCPT (as are C1 controls and
// line separators in an SMTPUTF8 one). Unquote reads one as a person types it (command line, alias files) into the
// form RCPT routes: "john doe" -> john doe, "a\"b" -> a"b. The one place address quoting is written.
// Failure: none; TryFormat returns false for what cannot be written; Unquote leaves what is not quoted as it is.
using Bridge.Common;

namespace Bridge.Routing;

public static class EnvelopeAddress
{
    /// <summary>"" for the null sender (empty local part and domain).</summary>
    public static string Format(string localPart, string domain) =>
        TryFormat(localPart, domain, out var address) ? address : $"{localPart}@{domain}";

    public static bool TryFormat(string localPart, string domain, out string address)
    {
        if (localPart.Length == 0 && domain.Length == 0)
        {
            address = "";
            return true;
        }
        if (IsDotString(localPart))
        {
            address = $"{localPart}@{domain}";
            return true;
        }
        var quoted = new System.Text.StringBuilder(localPart.Length + 4).Append('"');
        foreach (var c in localPart)
        {
            if (c < ' ' || c == (char)127 || !Printable(c))
            {
                address = "";
                return false;
            }
            if (c is '"' or '\\')
            {
                quoted.Append('\\');
            }
            quoted.Append(c);
        }
        address = quoted.Append("\"@").Append(domain).ToString();
        return true;
    }

    /// <summary>A local part as typed ("john doe", with quoted-pairs) to the form SmtpServer hands over for RCPT (john doe):
    /// the quotes taken off and each backslash-escaped character kept as itself. Anything not wholly quoted stays.</summary>
    public static string Unquote(string localPart)
    {
        if (localPart.Length < 2 || localPart[0] != '"' || localPart[^1] != '"')
        {
            return localPart;
        }
        var builder = new System.Text.StringBuilder(localPart.Length);
        for (var i = 1; i < localPart.Length - 1; i++)
        {
            if (localPart[i] == '\\' && i + 1 < localPart.Length - 1)
            {
                i++;
            }
            builder.Append(localPart[i]);
        }
        return builder.ToString();
    }

    /// <summary>local@domain as typed, its local part unquoted (Unquote); the domain after the last '@' as it is. An address
    /// without '@' is returned whole.</summary>
    public static string UnquoteAddress(string address)
    {
        var at = address.LastIndexOf('@');
        return at > 0 ? Unquote(address[..at]) + address[at..] : address;
    }

    /// <summary>Not a control character (C0, DEL, C1) nor a line or paragraph separator: nothing that could end or forge a
    /// line of a log, a header or a command.</summary>
    private static bool Printable(char c) => CommandAddress.Printable(c);

    /// <summary>RFC 5321 Dot-string: atoms of atext (or UTF-8, RFC 6531) separated by single dots.</summary>
    public static bool IsDotString(string localPart)
    {
        if (localPart.Length == 0 || localPart[0] == '.' || localPart[^1] == '.' || localPart.Contains("..", StringComparison.Ordinal))
        {
            return false;
        }
        foreach (var c in localPart)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || (c > 127 && Printable(c)) || "!#$%&'*+-/=?^_`{|}~.".Contains(c, StringComparison.Ordinal)))
            {
                return false;
            }
        }
        return true;
    }
}
