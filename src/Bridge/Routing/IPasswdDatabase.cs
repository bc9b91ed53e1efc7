// Job: look a login up in the system's passwd database (NSS via getpwnam_r).
// Failure: an unknown login or a lookup error is "no such account" (null).
using Bridge.Native;

namespace Bridge.Routing;

public interface IPasswdDatabase
{
    (uint Uid, uint Gid)? Find(string login);

    /// <summary>An answer known without asking NSS (which may block on a directory server); false when Find must ask.</summary>
    bool TryFindWithoutLookup(string login, out (uint Uid, uint Gid) account)
    {
        account = default;
        return false;
    }
}

public sealed class SystemPasswdDatabase : IPasswdDatabase
{
    public (uint Uid, uint Gid)? Find(string login) => Libc.GetPasswdEntry(login);
}
