// Job: remember for a few seconds the accounts getpwnam found, so that a busy recipient does not cost an NSS
// lookup (perhaps a directory server) on every RCPT, and its RCPT can be answered without leaving the socket
// thread (Hosting/SocketThreads.cs). Only found accounts are kept: an unknown login is asked again every time,
// so an account created a moment ago never gets a permanent 550 from the cache. Like nscd's passwd cache, a
// deleted or renumbered account is still seen for at most Ttl. Bounded by the number of real accounts.
// Failure: none of its own; lookups fail as the inner database does (null).
using System.Collections.Concurrent;

namespace Bridge.Routing;

public sealed class PasswdCache(IPasswdDatabase inner, TimeProvider time) : IPasswdDatabase
{
    public static readonly TimeSpan Ttl = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<string, ((uint Uid, uint Gid) Account, DateTimeOffset Expires)> _found = new(StringComparer.Ordinal);

    public (uint Uid, uint Gid)? Find(string login)
    {
        if (TryFindWithoutLookup(login, out var cached))
        {
            return cached;
        }
        var found = inner.Find(login);
        if (found is { } account)
        {
            _found[login] = (account, time.GetUtcNow() + Ttl);
        }
        else
        {
            _found.TryRemove(login, out _);
        }
        return found;
    }

    public bool TryFindWithoutLookup(string login, out (uint Uid, uint Gid) account)
    {
        if (_found.TryGetValue(login, out var entry) && entry.Expires > time.GetUtcNow())
        {
            account = entry.Account;
            return true;
        }
        account = default;
        return false;
    }
}
