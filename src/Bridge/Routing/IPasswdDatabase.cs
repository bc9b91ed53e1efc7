// Job: look a login up in the system's passwd database (NSS via getpwnam_r).
// Failure: an unknown login or a lookup error is "no such account" (null).
using Bridge.Native;

namespace Bridge.Routing;

public interface IPasswdDatabase
{
    (uint Uid, uint Gid)? Find(string login);
}

public sealed class SystemPasswdDatabase : IPasswdDatabase
{
    public (uint Uid, uint Gid)? Find(string login) => Libc.GetPasswdEntry(login);
}
