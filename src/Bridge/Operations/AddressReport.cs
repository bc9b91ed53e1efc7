// Job: `mailbridge resolve ADDRESS...`: for each address, what Bridge would answer at RCPT and, when it accepts it, why
// and where the mail would go: the user and how it was found, the first short name, the mailbox (path, whether it
// exists, owner, mode, whether Bridge would write it), the delivery mode and where it comes from, and the target.
// Nothing is sent or written.
// Failure: none; an address Bridge refuses is a line with the refusal (the command then exits 1).
using System.Globalization;
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery;
using Bridge.Delivery.Smtp;
using Bridge.Delivery.Spool;
using Bridge.Native;
using Bridge.Routing;

namespace Bridge.Operations;

public static class AddressReport
{
    /// <summary>An address as typed on the command line ("john doe"@x quoted or not) routed as RCPT would route it.</summary>
    public static RouteResult Route(SettingsSnapshot snapshot, string address)
    {
        var at = address.LastIndexOf('@');
        return at <= 0 || at == address.Length - 1
            ? RouteResult.Refuse(new DeliveryStatus(500, "5.5.2", "Syntax error: an address needs a local part and a domain (RFC 5321)"))
            : snapshot.Routing.Resolve(EnvelopeAddress.Unquote(address[..at]), address[(at + 1)..]);
    }

    public static (IReadOnlyList<string> Lines, bool Accepted) Explain(SettingsSnapshot snapshot, string address)
    {
        var route = Route(snapshot, address);
        if (!route.IsAccepted)
        {
            return ([$"{address}: {route.Refusal}"], false);
        }
        var lines = new List<string> { $"{address}: 250 2.1.5 accepted" };
        if (route.Recipient!.Alias is { } alias && snapshot.Routing.Aliases?.Content.Entries.GetValueOrDefault(alias) is { } entry)
        {
            lines.Add($"  alias:   {alias} ({entry.Source}) -> {string.Join(", ", route.Recipients.Select(r => r.User.ShortName))}");
        }
        foreach (var recipient in route.Recipients)
        {
            lines.AddRange(Explain(snapshot, recipient));
        }
        return (lines, true);
    }

    private static List<string> Explain(SettingsSnapshot snapshot, RoutedRecipient recipient)
    {
        var user = recipient.User;
        var options = snapshot.Options;
        var mode = user.ModeIn(options.Mode);
        return new List<string>
        {
            $"  user:    {user.ShortName}, first short name {user.ShortName} ({(user.Configured ? "configured in Bridge:Users" : "a login of the passwd database")}" +
                $"{(user.Uid is { } uid ? $", uid {uid.ToString(CultureInfo.InvariantCulture)}" : ", no system account: its mailbox belongs to Bridge's uid")})",
            $"  mailbox: {Mailbox(Path.Combine(options.Spool.Directory, user.ShortName), user.MailboxOwner)}",
            $"  mode:    {mode} ({(user.ModeOverride is null ? "Bridge:Mode" : "the user's own Mode in Bridge:Users")})",
            $"  target:  {(mode == BridgeMode.Spool ? $"spool:{options.Spool.Directory}" : snapshot.Store.Endpoint.ToString())}" +
                $"{(mode == BridgeMode.Legacy && options.Legacy.FallbackToSpool ? $", falling back to spool:{options.Spool.Directory}" : "")}",
            $"  headers: X-Original-To: {recipient.Address}, Delivered-To: {recipient.DeliveredTo}",
        };
    }

    /// <summary>What the spool agent would find at the mailbox path (MailboxSafety: the rules it delivers by).</summary>
    private static string Mailbox(string path, uint expectedUid)
    {
        if (Libc.Lstat(path, out var stat) != 0)
        {
            return $"{path} (does not exist yet: created 0600 on the first delivery)";
        }
        var state = $"exists, owner uid {stat.Uid}, mode {Convert.ToString(stat.Permissions, 8)}";
        return MailboxSafety.Problem(stat, expectedUid) is { } problem
            ? $"{path} ({state}: {problem.Text}: Bridge defers its mail 450 4.2.0)"
            : $"{path} ({state}, {stat.Size} bytes)";
    }
}
