// Job: let socket continuations run on the runtime's socket event threads instead of handing each one to the
// thread pool (DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1). Every read of an SMTP command, a DATA chunk or
// a store reply otherwise costs a wake-up of a pool thread; bench/ measured about a third less CPU per relayed
// message and more messages per second (bench/README.md). The runtime reads the variable once, when the first
// socket is used, so Program sets it before anything else; a value the administrator set (say 0 in the unit
// file) is kept.
// The rule this imposes on the rest of Bridge: work that can block a thread (file system, fsync, NSS lookups)
// runs on the thread pool (Task.Run), never inline after a socket read, so that a slow disk or directory
// server stalls only the delivery that needs it. Today that is RecipientFilter (getpwnam) and the spool agent
// (GroupCommitter's drain, the multi-mailbox append).
// Failure: none; if the runtime ignored the variable, continuations simply go through the thread pool.
namespace Bridge.Hosting;

public static class SocketThreads
{
    public const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    public static void PreferInlineCompletions()
    {
        if (Environment.GetEnvironmentVariable(Variable) is null)
        {
            Environment.SetEnvironmentVariable(Variable, "1");
        }
    }
}
