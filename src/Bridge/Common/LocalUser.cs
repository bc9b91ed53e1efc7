// Job: the resolved identity of a local recipient: the first short name (names the spool file), the owner
// the mailbox must have, and an optional per-user delivery mode.
// Failure: none; values only.
using Bridge.Native;

namespace Bridge.Common;

public enum BridgeMode
{
    Spool,
    Legacy,
}

/// <param name="ShortName">The user's FIRST short name; already checked by ShortName.IsSafeFileName.</param>
/// <param name="Uid">Owner from the passwd database, or null when the user is only configured.</param>
/// <param name="ModeOverride">Bridge:Users[i]:Mode, when set.</param>
/// <param name="Configured">Found in Bridge:Users (else a login of the passwd database).</param>
public sealed record LocalUser(string ShortName, uint? Uid, uint? Gid, BridgeMode? ModeOverride, bool Configured = false)
{
    /// <summary>The mode in force for this user: their own Bridge:Users[i]:Mode, else <paramref name="defaultMode"/>
    /// (Bridge:Mode). The one place this rule is written.</summary>
    public BridgeMode ModeIn(BridgeMode defaultMode) => ModeOverride ?? defaultMode;

    /// <summary>The uid the user's mailbox must belong to: the passwd database's, else (a user only configured in
    /// Bridge:Users) Bridge's own effective uid. The one place this rule is written.</summary>
    public uint MailboxOwner => Uid ?? Libc.Geteuid();
}

/// <param name="Address">The recipient exactly as the client gave it in RCPT (X-Original-To).</param>
/// <param name="DeliveredTo">The canonical address written to Delivered-To and checked for loops.</param>
public sealed record RoutedRecipient(string Address, LocalUser User, string DeliveredTo)
{
    /// <summary>The alias (Bridge:AliasFiles) this recipient was reached through, or null for a user's own address.</summary>
    public string? Alias { get; init; }

    /// <summary>The address the mail store is given: the RCPT address, or for an alias's member the member's own.</summary>
    public string StoreAddress => Alias is null ? Address : DeliveredTo;

    /// <summary>RCPT's NOTIFY= (RFC 3461), upper case: "NEVER", or a list of SUCCESS, FAILURE, DELAY; null when not given.</summary>
    public string? Notify { get; init; }

    /// <summary>The RCPT asked NOTIFY=SUCCESS and reached an alias of several users: the sender gets one "expanded" notice
    /// for the alias (Address), and this member's own Notify has SUCCESS taken out (RFC 3461 6.2.7.3).</summary>
    public bool ExpansionNotice { get; init; }

    /// <summary>RCPT's ORCPT= as given: "addr-type;xtext".</summary>
    public string? Orcpt { get; init; }

    /// <summary>The original recipient for X-Original-To: ORCPT's address when it is an rfc822 one, else the RCPT address.</summary>
    public string OriginalRecipient =>
        Orcpt is { } orcpt && orcpt.StartsWith("rfc822;", StringComparison.OrdinalIgnoreCase) ? Xtext.Decode(orcpt["rfc822;".Length..]) : Address;

    /// <summary>Whether the sender wants a notification of this kind (FAILURE, SUCCESS, DELAY): without NOTIFY, of a failure only.</summary>
    public bool Wants(string kind) => Notify is null ? kind == "FAILURE" : Notify.Split(',').Contains(kind, StringComparer.Ordinal);
}
