// Job: the one rule for whether an address can go into a MAIL or RCPT command as it is (Intake's checks, Routing's
// quoting and the relay client, which also sends addresses read from spool files someone else wrote, all use it).
// Failure: none; a pure predicate.
namespace Bridge.Common;

public static class CommandAddress
{
    public static bool Printable(char c) =>
        !char.IsControl(c) && char.GetUnicodeCategory(c) is not (System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator);

    /// <summary>Whether <paramref name="address"/> (as Format writes it, or as a spool file says it) can go into a MAIL or
    /// RCPT command as it is: no control or separator character anywhere, and outside a quoted local part no space and
    /// no angle bracket (which would end the path and add parameters or commands).</summary>
    public static bool IsSafe(string address)
    {
        var quoted = false;
        for (var i = 0; i < address.Length; i++)
        {
            var c = address[i];
            if (c < ' ' || c == (char)127 || (c > 127 && !Printable(c)))
            {
                return false;
            }
            if (quoted && c == '\\')
            {
                // quoted-pair: a backslash escapes one printable character, never a control (RFC 5321 4.1.2)
                if (++i >= address.Length || address[i] < ' ' || address[i] == (char)127 || (address[i] > 127 && !Printable(address[i])))
                {
                    return false;
                }
                continue;
            }
            if (c == '"')
            {
                quoted = !quoted;
            }
            else if (!quoted && c is ' ' or '<' or '>')
            {
                return false;
            }
        }
        return !quoted;
    }
}
