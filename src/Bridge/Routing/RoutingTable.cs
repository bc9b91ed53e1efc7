// Job: resolve an envelope recipient (local part + domain) to local users, from one validated snapshot of the
// configuration: local domains, the aliases (Bridge:AliasFiles, looked up first, as Postfix does), configured users
// and their short names, the recipient delimiter, and optionally the system's passwd database.
// Failure: foreign domain -> 554 5.7.1 (no open relay); unknown user -> 550 5.1.1; an alias Bridge cannot deliver
// (a command, file or remote target) -> 550 5.3.5, an alias loop -> 554 5.4.6. Addresses that are not safe file
// names are never looked up as logins and never become paths.
using Bridge.Common;

namespace Bridge.Routing;

public sealed class RoutingTable
{
    private readonly HashSet<string> _localDomains;
    private readonly Dictionary<string, LocalUser> _byName = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LocalUser> _byAddress = new(StringComparer.Ordinal);
    private readonly string _delimiters;
    private readonly IPasswdDatabase? _passwd;
    private readonly string _primaryDomain;
    private readonly AliasTable? _aliases;

    /// <param name="users">Each user's short names; the first one names the spool file.</param>
    /// <param name="passwd">The system database, or null when Bridge:UseSystemAccounts is false.</param>
    public RoutingTable(
        IEnumerable<string> localDomains,
        IEnumerable<(IReadOnlyList<string> ShortNames, BridgeMode? Mode)> users,
        string recipientDelimiter,
        IPasswdDatabase? passwd,
        AliasTable? aliases = null)
    {
        _aliases = aliases is { IsEmpty: false } ? aliases : null;
        var domains = localDomains.Select(NormalizeDomain).Where(d => d.Length > 0).ToList();
        _primaryDomain = domains.FirstOrDefault() ?? "localhost";
        _localDomains = new HashSet<string>(domains, StringComparer.Ordinal) { "localhost" };
        _delimiters = recipientDelimiter;
        _passwd = passwd;
        foreach (var (shortNames, mode) in users)
        {
            var first = shortNames[0].ToLowerInvariant();
            var account = passwd?.Find(first);
            var user = new LocalUser(first, account?.Uid, account?.Gid, mode, Configured: true);
            foreach (var name in shortNames.Select(n => n.ToLowerInvariant()))
            {
                if (name.Contains('@', StringComparison.Ordinal))
                {
                    _byAddress.TryAdd(name, user);
                }
                else
                {
                    _byName.TryAdd(name, user);
                }
            }
        }
    }

    public RouteResult Resolve(string localPart, string domain) => Resolve(localPart, domain, mayBlock: true)!;

    /// <summary>Like Resolve, but null where Resolve would have to ask NSS (a login not in the passwd cache):
    /// the caller then runs Resolve where blocking is harmless.</summary>
    public RouteResult? ResolveWithoutBlocking(string localPart, string domain) => Resolve(localPart, domain, mayBlock: false);

    private RouteResult? Resolve(string localPart, string domain, bool mayBlock)
    {
        var address = EnvelopeAddress.Format(localPart, domain);
        var normalizedDomain = NormalizeDomain(domain);
        if (!_localDomains.Contains(normalizedDomain))
        {
            return RouteResult.Refuse(new DeliveryStatus(554, "5.7.1",
                $"<{address}>: Relay access denied (domain is not in Bridge:LocalDomains)"));
        }

        if (_aliases is { Available: false })
        {
            // No reading of the alias files has succeeded yet: any name may be an alias, so none is answered for good.
            return RouteResult.Refuse(new DeliveryStatus(451, "4.3.0",
                $"<{address}>: the alias files (Bridge:AliasFiles) cannot be read yet, see Bridge's log; try again later"));
        }
        var local = localPart.ToLowerInvariant();
        foreach (var candidate in Candidates(local))
        {
            if (_aliases?.Expand(candidate, LocalNameOf) is { } expansion)
            {
                return Members(address, normalizedDomain, expansion, mayBlock);
            }
            var (user, wouldBlock) = Find(candidate, normalizedDomain, mayBlock);
            if (wouldBlock)
            {
                return null;
            }
            if (user is not null)
            {
                return RouteResult.Accept(new RoutedRecipient(address, user, $"{user.ShortName}@{_primaryDomain}"));
            }
        }
        return RouteResult.Refuse(new DeliveryStatus(550, "5.1.1",
            $"<{address}>: Recipient address rejected: User unknown in local recipient table"));
    }

    /// <summary>The user a login names (Dovecot's $USER at IMAP/POP3 login): any of the user's short names, bare or as the
    /// full address at a local domain (the note's george@afp548.com), case-insensitive; never an alias (an alias is an
    /// address, not an account), never a +tag form. Null when it names no user.</summary>
    public LocalUser? FindLogin(string login)
    {
        var name = login.Trim().ToLowerInvariant();
        var at = name.LastIndexOf('@');
        if (at >= 0)
        {
            var domain = NormalizeDomain(name[(at + 1)..]);
            if (at == 0 || !_localDomains.Contains(domain))
            {
                return null;
            }
            if (_byAddress.TryGetValue($"{name[..at]}@{domain}", out var byAddress))
            {
                return byAddress;
            }
            name = name[..at];
        }
        return Find(name, NormalizeDomain(at >= 0 ? login[(at + 1)..] : _primaryDomain), mayBlock: true).User;
    }

    /// <summary>The aliases in force (for `check` and `resolve`); null when Bridge:AliasFiles is empty.</summary>
    public AliasTable? Aliases => _aliases;

    /// <summary>The users an alias ends at, each once, or the refusal: a member that is no local user, an
    /// undeliverable target, a loop.</summary>
    private RouteResult? Members(string address, string domain, AliasExpansion expansion, bool mayBlock)
    {
        if (expansion.Problem is { } problem)
        {
            return RouteResult.Refuse(expansion.Loop
                ? new DeliveryStatus(554, "5.4.6", $"<{address}>: {problem}")
                : new DeliveryStatus(550, "5.3.5", $"<{address}>: {problem}"));
        }
        var members = new List<RoutedRecipient>(expansion.Names.Count);
        foreach (var name in expansion.Names)
        {
            var (user, wouldBlock) = Find(name, domain, mayBlock);
            if (wouldBlock)
            {
                return null;
            }
            if (user is null)
            {
                // Which member it is stays unsaid: the name is what a file holds, and the client may be anyone.
                return RouteResult.Refuse(new DeliveryStatus(550, "5.1.1",
                    $"<{address}>: alias {expansion.Alias} ({expansion.Source}) names a member that is not a local user"));
            }
            if (!members.Any(m => m.User.ShortName == user.ShortName))
            {
                members.Add(new RoutedRecipient(address, user, $"{user.ShortName}@{_primaryDomain}") { Alias = expansion.Alias });
            }
        }
        return RouteResult.Accept(members);
    }

    /// <summary>An alias target local@domain: its local part when the domain is local, else null (remote).</summary>
    private string? LocalNameOf(string address)
    {
        var at = address.LastIndexOf('@');
        return at > 0 && _localDomains.Contains(NormalizeDomain(address[(at + 1)..])) ? address[..at] : null;
    }

    private IEnumerable<string> Candidates(string local)
    {
        yield return local;
        if (_delimiters.Length > 0)
        {
            var cut = local.IndexOfAny(_delimiters.ToCharArray());
            if (cut > 0)
            {
                yield return local[..cut];
            }
        }
    }

    private (LocalUser? User, bool WouldBlock) Find(string local, string domain, bool mayBlock)
    {
        if (_byAddress.TryGetValue($"{local}@{domain}", out var user) || _byName.TryGetValue(local, out user))
        {
            return (user, false);
        }
        if (_passwd is null || !ShortName.IsSafeFileName(local))
        {
            return (null, false);
        }
        (uint Uid, uint Gid)? account;
        if (_passwd.TryFindWithoutLookup(local, out var known))
        {
            account = known;
        }
        else if (mayBlock)
        {
            account = _passwd.Find(local);
        }
        else
        {
            return (null, true);
        }
        return (account is { } found ? new LocalUser(local, found.Uid, found.Gid, null) : null, false);
    }

    private static string NormalizeDomain(string domain) => domain.Trim().TrimEnd('.').ToLowerInvariant();
}
