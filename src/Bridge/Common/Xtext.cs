// Job: RFC 3461 xtext, the encoding of ENVID and ORCPT values: printable ASCII except "+" and "=", which (like any
// other byte) are written "+" and two upper-case hex digits. Checked where a client gives it, decoded for the mbox
// headers and the DSN fields, encoded when Bridge makes an ORCPT itself.
// Failure: none; IsValid says whether text is xtext, Decode of invalid text returns it as it is.
using System.Text;

namespace Bridge.Common;

public static class Xtext
{
    public static bool IsValid(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '+')
            {
                if (i + 2 >= text.Length || !IsHex(text[i + 1]) || !IsHex(text[i + 2]))
                {
                    return false;
                }
                i += 2;
            }
            else if (c is < '!' or > '~' or '=')
            {
                return false;
            }
        }
        return true;
    }

    public static string Decode(string text)
    {
        if (!text.Contains('+', StringComparison.Ordinal) || !IsValid(text))
        {
            return text;
        }
        var bytes = new List<byte>(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '+')
            {
                bytes.Add(Convert.ToByte(text.Substring(i + 1, 2), 16));
                i += 2;
            }
            else
            {
                bytes.Add((byte)text[i]);
            }
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }

    public static string Encode(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            if (b is < (byte)'!' or > (byte)'~' or (byte)'+' or (byte)'=')
            {
                builder.Append('+').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append((char)b);
            }
        }
        return builder.ToString();
    }

    private static bool IsHex(char c) => c is (>= '0' and <= '9') or (>= 'A' and <= 'F');
}
