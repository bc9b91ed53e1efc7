// Job: `bridge collect --user LOGIN`, run by Dovecot's post-login script (deploy/dovecot/30-bridge-collect.conf) before
// an IMAP or POP3 session starts: when LOGIN's user is in Legacy mode, the mail waiting in the spool of its first
// short name (LOGIN is any of the user's short names, or the full address at a local domain; never an alias) goes
// into the store as `drain` moves it, for at most
// Bridge:Legacy:LoginCollectTimeout, so the login never waits longer; what is left stays for the next login. Only the
// mailbox of the user Dovecot authenticated is touched: LOGIN comes from Dovecot, never from the user's input.
// Failure: never fails the login: every problem is a line of output (the script sends it to the mail log).
using Bridge.Configuration;
using Bridge.Delivery.Spool;

namespace Bridge.Operations;

public static class LoginCollect
{
    public static async Task RunAsync(SettingsSnapshot snapshot, string login, TextWriter output, CancellationToken cancellationToken)
    {
        // Only the logged-in user's own spool, and only when it is not their INBOX: a user in Spool mode reads the spool
        // itself; an alias names no account, so it is never a login.
        if (snapshot.Routing.FindLogin(login) is not { } user)
        {
            await output.WriteLineAsync($"collect {login}: nothing to collect: no user of Bridge's has that login").ConfigureAwait(false);
            return;
        }
        if ((user.ModeOverride ?? snapshot.Options.Mode) != Common.BridgeMode.Legacy)
        {
            return; // Spool mode: the spool is the INBOX, nothing moves (the common case, said by nothing)
        }
        var name = user.ShortName;
        var path = Path.Combine(snapshot.Spool.Directory, name);
        if (!File.Exists(path) || new FileInfo(path).Length == 0)
        {
            return; // nothing waiting: the common case, said by nothing
        }
        var limit = snapshot.Options.Legacy.LoginCollectTimeout;
        using var hardStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        hardStop.CancelAfter(limit + TimeSpan.FromSeconds(5)); // a store that hangs in the middle of a message
        var (_, _, more) = await SpoolDrain.DrainMailboxAsync(snapshot, name, new InProcessMailboxLocks(),
            new AppendJournal(snapshot.Options.Spool.JournalDirectory), dryRun: false, int.MaxValue, output, DateTime.UtcNow + limit, hardStop.Token)
            .ConfigureAwait(false);
        if (more)
        {
            await output.WriteLineAsync($"collect {login}: Bridge:Legacy:LoginCollectTimeout ({limit.TotalSeconds:0} s) is up; the rest of {path} stays for the next login")
                .ConfigureAwait(false);
        }
    }
}
