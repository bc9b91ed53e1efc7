// Job: collect at login, what the Mac OS X mail store did: when LOGIN's user is in Legacy mode, the mail waiting in the
// spool of its first short name (LOGIN is any of the user's short names, or that name as the address at a local
// domain; never an alias) goes into the store as `drain` moves it, for at most Bridge:Legacy:LoginCollectTimeout, so
// the login never waits longer; what is left stays for the next login (or the daemon's collector). A mailbox locked
// by another program is waited for at most a second: the login goes on. Used by the daemon's collect socket
// (LoginCollectService, which the Dovecot post-login client asks) and by `mailbridge collect --user LOGIN`.
// Only the mailbox of the user Dovecot authenticated is touched: LOGIN comes from Dovecot, never from the user's input.
// Failure: never throws for anything on disk or on the network; the result says what happened, in one line.
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery.Spool;
using Bridge.Delivery.Store;

namespace Bridge.Collection;

/// <param name="Moved">Messages now in the store.</param>
/// <param name="More">Mail was left (time up, locked, the store refused or is down): the next login takes it.</param>
/// <param name="Lines">What happened, for the mail log; none when there was nothing to do.</param>
public readonly record struct CollectResult(int Moved, bool More, IReadOnlyList<string> Lines)
{
    public static CollectResult Nothing => new(0, false, []);

    public string Line => string.Join("; ", Lines);
}

public static class LoginCollect
{
    /// <summary>The longest a login waits for a mailbox another program has locked.</summary>
    public static readonly TimeSpan LockWait = TimeSpan.FromSeconds(1);

    /// <summary>The first short name whose spool a login collects, or null (no user, or a user in Spool mode) and why.</summary>
    public static (string? ShortName, string Why) Target(SettingsSnapshot snapshot, string login)
    {
        // Only the logged-in user's own spool, and only when it is not their INBOX: a user in Spool mode reads the spool
        // itself; an alias names no account, so it is never a login.
        if (snapshot.Routing.FindLogin(login) is not { } user)
        {
            return (null, "nothing to collect: no user of Bridge's has that login");
        }
        return user.ModeIn(snapshot.Options.Mode) == BridgeMode.Legacy ? (user.ShortName, "") : (null, "");
    }

    public static async Task<CollectResult> RunAsync(SettingsSnapshot snapshot, StoreClient store, string login, InProcessMailboxLocks locks,
        AppendJournal journal, CancellationToken cancellationToken)
    {
        var (name, why) = Target(snapshot, login);
        if (name is null)
        {
            return new CollectResult(0, false, why.Length == 0 ? [] : [$"collect {login}: {why}"]);
        }
        var path = Path.Combine(snapshot.Spool.Directory, name);
        if (Native.Libc.Lstat(path, out var stat) != 0 || stat.Size == 0)
        {
            return CollectResult.Nothing; // nothing waiting: the common case, said by nothing
        }
        var limit = snapshot.Options.Legacy.LoginCollectTimeout;
        using var hardStop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        hardStop.CancelAfter(limit + TimeSpan.FromSeconds(5)); // a store that hangs in the middle of a message
        using var output = new StringWriter();
        var quick = snapshot with { Spool = snapshot.Spool with { LockTimeout = snapshot.Spool.LockTimeout < LockWait ? snapshot.Spool.LockTimeout : LockWait } };
        bool ok, more;
        int relayed;
        try
        {
            (ok, relayed, more, _) = await SpoolCollector.DrainMailboxAsync(quick, store, name, locks, journal, dryRun: false, int.MaxValue, output,
                DateTime.UtcNow + limit, hardStop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            (ok, relayed, more) = (false, 0, true);
            await output.WriteLineAsync($"collect {login}: the store did not finish within {limit.TotalSeconds + 5:0} s").ConfigureAwait(false);
        }
        if (more)
        {
            await output.WriteLineAsync($"collect {login}: Bridge:Legacy:LoginCollectTimeout ({limit.TotalSeconds:0} s) is up; the rest of {path} stays for the next login")
                .ConfigureAwait(false);
        }
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new CollectResult(relayed, more || !ok, lines);
    }
}
