// Job: `bridge check`: validate the configuration and this machine the way an admin would before trusting
// Bridge with mail: the listening port, the spool directory (the seed's "most likely a permissions problem"),
// the journal directory, each configured user's mailbox and account, in Legacy mode the mail store, the LMTP socket
// (LmtpSocketCheck: there, and reachable by the MTA's user), and where
// Postfix, Exim and Dovecot are installed their settings for Bridge (PostfixCheck, EximCheck, DovecotCheck).
// Failure: every problem is a Finding (FAIL or WARN with its fix); the command exits 1 when any FAIL.
using System.Net;
using System.Net.Sockets;
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery.Smtp;
using Bridge.Delivery.Spool;
using Bridge.Native;
using Bridge.Routing;
using Microsoft.Extensions.Configuration;

namespace Bridge.Operations;

/// <summary>The peers' configurations `check` reads, when not their defaults.</summary>
public sealed record PeerConfigs(string? DovecotConfig, string? Exim, string? EximConfig);

public static class MachineCheck
{
    /// <param name="tools">Where `check --dovecot-config/--exim/--exim-config` point (null: the programs' own defaults).</param>
    public static async Task<IReadOnlyList<Finding>> RunAsync(IConfiguration configuration, IPasswdDatabase passwd, CancellationToken cancellationToken,
        PeerConfigs? tools = null)
    {
        tools ??= new PeerConfigs(null, null, null);
        var findings = new List<Finding>();
        var (snapshot, errors) = SettingsSnapshot.Load(configuration, passwd);
        if (snapshot is null)
        {
            findings.AddRange(errors.Select(e => new Finding(Level.Fail, "configuration", e)));
            return findings;
        }
        var options = snapshot.Options;
        findings.Add(new Finding(Level.Ok, "configuration", $"valid; mode {options.Mode}, server name {options.ServerName}"));
        findings.Add(CheckPort(options.Listen));
        findings.AddRange(CheckSpoolDirectory(options.Spool, MailboxOwners(options, passwd)));
        findings.Add(CheckWritableDirectory("journal", options.Spool.JournalDirectory, "Bridge:Spool:JournalDirectory"));
        if (Directory.Exists(options.Spool.JournalDirectory) &&
            new AppendJournal(options.Spool.JournalDirectory).Prepare() is { } journalProblem)
        {
            findings.Add(new Finding(Level.Fail, $"journal {options.Spool.JournalDirectory}", journalProblem, "Bridge refuses to start with it so"));
        }
        findings.AddRange(CheckKeptJournalEntries(options.Spool));
        findings.AddRange(CheckUsers(options, snapshot, passwd));
        findings.AddRange(CheckAliases(snapshot));
        if (options.UsesStore)
        {
            findings.Add(await CheckStoreAsync(snapshot.Store.Endpoint, cancellationToken).ConfigureAwait(false));
        }
        var postfix = await PostfixCheck.RunAsync(options, cancellationToken).ConfigureAwait(false);
        findings.AddRange(postfix);
        findings.AddRange(await DovecotCheck.RunAsync(options, tools.DovecotConfig, cancellationToken).ConfigureAwait(false));
        var exim = await EximCheck.RunAsync(options, tools.Exim, tools.EximConfig, cancellationToken).ConfigureAwait(false);
        findings.AddRange(exim);
        var mtaUsers = new List<string>();
        if (postfix.Count > 0 && await PostfixCheck.MailOwnerAsync(cancellationToken).ConfigureAwait(false) is { } owner)
        {
            mtaUsers.Add(owner);
        }
        if (exim.Count > 0)
        {
            mtaUsers.Add("Debian-exim");
        }
        findings.AddRange(LmtpSocketCheck.Run(options.Lmtp, mtaUsers));
        findings.AddRange(LmtpSocketCheck.RunCollect(options));
        if (postfix.Count == 0 && exim.Count == 0)
        {
            findings.Add(new Finding(Level.Ok, "mta", "neither Postfix (postconf) nor Exim is installed here: your MTA's settings were not checked"));
        }
        return findings;
    }

    private static Finding CheckPort(ListenOptions listen)
    {
        var subject = $"listen {listen.Address}:{listen.Port}";
        try
        {
            using var probe = new TcpListener(IPAddress.Parse(listen.Address), listen.Port);
            probe.Start();
            return new Finding(Level.Ok, subject, "the port can be bound");
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AccessDenied)
        {
            return new Finding(Level.Fail, subject, "permission denied", "run as root or with CAP_NET_BIND_SERVICE, or set Bridge:Listen:Port above 1023");
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            return new Finding(Level.Fail, subject, "already in use (is Bridge already running?)", "stop the other program or set Bridge:Listen:Port");
        }
        catch (SocketException ex)
        {
            return new Finding(Level.Fail, subject, ex.Message, "check Bridge:Listen:Address");
        }
    }

    private static IEnumerable<Finding> CheckSpoolDirectory(SpoolOptions spool, IReadOnlyList<(string Name, uint Uid, uint Gid)> owners)
    {
        var subject = $"spool {spool.Directory}";
        if (Libc.Lstat(spool.Directory, out var stat) != 0)
        {
            yield return new Finding(Level.Fail, subject, "does not exist", $"mkdir -m 1777 {spool.Directory}");
            yield break;
        }
        const uint directory = 0x4000;
        if ((stat.Mode & Libc.S_IFMT) != directory)
        {
            yield return new Finding(Level.Fail, subject, "is not a directory", "set Bridge:Spool:Directory");
            yield break;
        }
        var mode = stat.Permissions;
        // A user who cannot search the directory cannot open a mailbox in it at all: the reader fails, whatever the
        // mailbox's own mode (the seed's "most likely a permissions problem").
        var locked = owners.Where(o => !CanSearch(stat, o.Uid, o.Gid)).Select(o => o.Name).ToList();
        if (locked.Count > 0)
        {
            yield return new Finding(Level.Fail, subject,
                $"mode {Convert.ToString(mode, 8)} (owner uid {stat.Uid}, gid {stat.Gid}): {string.Join(", ", locked)} cannot enter it, so their mail readers cannot open their mailboxes",
                $"chmod 1777 {spool.Directory} (or chown root:{spool.MailGroup} and chmod 2775)");
        }
        var mailGid = Libc.GetGroupId(spool.MailGroup);
        if (locked.Count > 0)
        {
            yield return CheckWritableDirectory("dotlocks", spool.Directory, "Bridge:Spool:Directory");
            yield break; // the same fix makes dotlocks possible too: one line for it is enough
        }
        var sticky1777 = mode == Convert.ToUInt32("1777", 8);
        var setgidMail = mode == Convert.ToUInt32("2775", 8) && stat.Gid == mailGid;
        yield return sticky1777 || setgidMail
            ? new Finding(Level.Ok, subject, $"mode {Convert.ToString(mode, 8)}{(setgidMail ? $" group {spool.MailGroup}" : "")}")
            : new Finding(Level.Warn, subject, $"mode {Convert.ToString(mode, 8)} (owner uid {stat.Uid}, gid {stat.Gid}): mail readers may be unable to create dotlocks",
                $"chmod 1777 {spool.Directory} (or chown root:{spool.MailGroup} and chmod 2775)");
        yield return CheckWritableDirectory("dotlocks", spool.Directory, "Bridge:Spool:Directory");
    }

    /// <summary>The execute (search) bit that applies to a user with this uid and primary gid (root always may).</summary>
    private static bool CanSearch(FileStat directory, uint uid, uint gid)
    {
        var bits = directory.Permissions;
        return uid == 0 || (directory.Uid == uid ? (bits & 0x40) != 0 : directory.Gid == gid ? (bits & 0x8) != 0 : (bits & 0x1) != 0);
    }

    /// <summary>Whose mail readers open mailboxes in the spool: configured users with a system account, and the
    /// owners of the files already there.</summary>
    private static IReadOnlyList<(string Name, uint Uid, uint Gid)> MailboxOwners(BridgeOptions options, IPasswdDatabase passwd)
    {
        var owners = new Dictionary<uint, (string Name, uint Uid, uint Gid)>();
        foreach (var first in options.Users.Select(u => u.ShortNames[0].ToLowerInvariant()))
        {
            if (passwd.Find(first) is { } account)
            {
                owners.TryAdd(account.Uid, (first, account.Uid, account.Gid));
            }
        }
        try
        {
            foreach (var file in Directory.EnumerateFiles(options.Spool.Directory))
            {
                var name = Path.GetFileName(file);
                if (ShortName.IsSafeFileName(name) && Libc.Lstat(file, out var stat) == 0 && stat.IsRegularFile && passwd.Find(name) is { } account)
                {
                    owners.TryAdd(account.Uid, (name, account.Uid, account.Gid));
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Bridge itself cannot list it: the dotlock check below says so
        }
        return [.. owners.Values.OrderBy(o => o.Name, StringComparer.Ordinal)];
    }

    /// <summary>Creates and removes a file, as a dotlock or a journal entry would be.</summary>
    private static Finding CheckWritableDirectory(string what, string path, string key)
    {
        var subject = $"{what} {path}";
        var probe = Path.Combine(path, $".bridge-check-{Environment.ProcessId}");
        var fd = Libc.Open(probe, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0x180);
        if (fd < 0)
        {
            var error = Libc.LastError;
            if (error == Libc.ENOENT && what == "journal")
            {
                return new Finding(Level.Ok, subject, "will be created at start");
            }
            return new Finding(Level.Fail, subject, $"Bridge (uid {Libc.Geteuid()}) cannot create files here: {Libc.Describe(error)}",
                $"give Bridge's user write access, or set {key}");
        }
        Libc.Close(fd);
        Libc.Unlink(probe);
        return new Finding(Level.Ok, subject, $"Bridge (uid {Libc.Geteuid()}) can create files here");
    }

    /// <summary>Append journal entries crash recovery could not settle (Delivery/Spool/AppendRecovery): FAIL when the
    /// mailbox may hold a partial record beside other mail, WARN when only the entry itself was unreadable.</summary>
    private static IEnumerable<Finding> CheckKeptJournalEntries(SpoolOptions spool)
    {
        foreach (var kept in new Delivery.Spool.AppendJournal(spool.JournalDirectory).KeptEntries())
        {
            var mailbox = Path.Combine(spool.Directory, kept.Mailbox);
            yield return kept.Critical
                ? new Finding(Level.Fail, $"mailbox {kept.Mailbox}", $"crash recovery kept everything in {mailbox}: {kept.Why}",
                    $"look at {mailbox} where the record named in {kept.File} starts (a reader may merge it with the next message), then remove {kept.File} and its .why file")
                : new Finding(Level.Warn, $"mailbox {kept.Mailbox}", $"an append journal entry was set aside: {kept.Why}",
                    $"check that the last message in {mailbox} is whole, then remove {kept.File} and its .why file");
        }
    }

    /// <summary>Bridge:AliasFiles: what the files say wrong (file and line), and every alias that would be refused at
    /// RCPT (a member that is no local user, a loop).</summary>
    private static IEnumerable<Finding> CheckAliases(SettingsSnapshot snapshot)
    {
        if (snapshot.Routing.Aliases is not { } aliases)
        {
            yield break;
        }
        var subject = $"aliases {string.Join(", ", snapshot.Options.AliasFiles)}";
        foreach (var problem in aliases.Content.Unreadable)
        {
            yield return new Finding(Level.Fail, subject, problem.Described, "make the file a regular file that only its owner can write, readable by Bridge");
        }
        foreach (var problem in aliases.Problems.Except(aliases.Content.Unreadable))
        {
            yield return new Finding(Level.Warn, subject, problem.Described, "deliver such aliases with the MTA's own alias maps, or remove them");
        }
        var domain = snapshot.Options.LocalDomains.FirstOrDefault() ?? "localhost";
        var refused = 0;
        foreach (var name in aliases.Content.Entries.Keys.Order(StringComparer.Ordinal))
        {
            var route = snapshot.Routing.Resolve(name, domain);
            if (!route.IsAccepted && route.Refusal.Enhanced != "5.3.5") // undeliverable targets are listed above already
            {
                refused++;
                yield return new Finding(Level.Warn, subject, $"mail to {name}@{domain} is refused: {route.Refusal}", "fix the alias");
            }
        }
        yield return new Finding(Level.Ok, subject, $"{aliases.Content.Entries.Count} aliases read; {refused} refused at RCPT besides the ones above");
    }

    private static IEnumerable<Finding> CheckUsers(BridgeOptions options, SettingsSnapshot snapshot, IPasswdDatabase passwd)
    {
        foreach (var user in options.Users)
        {
            var first = user.ShortNames[0].ToLowerInvariant();
            var subject = $"user {first}";
            var account = passwd.Find(first);
            if (account is null)
            {
                yield return new Finding(Level.Warn, subject, $"no system account: its mailbox will belong to Bridge's own uid {Libc.Geteuid()}",
                    "make sure the mail store can read it, or create the account");
            }
            foreach (var name in user.ShortNames.Where(n => n.Contains('@', StringComparison.Ordinal)))
            {
                var domain = name[(name.IndexOf('@', StringComparison.Ordinal) + 1)..];
                if (!snapshot.Routing.Resolve(name[..name.IndexOf('@', StringComparison.Ordinal)], domain).IsAccepted)
                {
                    yield return new Finding(Level.Warn, subject, $"short name {name}: {domain} is not a local domain, so it never matches",
                        $"add {domain} to Bridge:LocalDomains");
                }
            }
            yield return CheckMailbox(Path.Combine(options.Spool.Directory, first), subject, account?.Uid ?? Libc.Geteuid(),
                account is null ? null : first);
        }
    }

    /// <summary>Why delivery would refuse (450 4.2.0) an existing mailbox with this lstat, and the fix ("chown": give it
    /// to its user); null when it would write it. The same rules MailboxAppender applies when it opens the file.</summary>
    private static Finding CheckMailbox(string path, string subject, uint expectedUid, string? login)
    {
        if (Libc.Lstat(path, out var stat) != 0)
        {
            return new Finding(Level.Ok, subject, $"{path} does not exist yet (created 0600 on first delivery)");
        }
        if (MailboxSafety.Problem(stat, expectedUid) is { } problem)
        {
            return new Finding(Level.Fail, subject, $"{path} {problem.Text}: Bridge defers its mail", problem.Fix switch
            {
                "chown" => $"chown {login ?? expectedUid.ToString(System.Globalization.CultureInfo.InvariantCulture)} {path}",
                var fix => fix,
            });
        }
        if (MailboxSafety.OpenToOthers(stat))
        {
            return new Finding(Level.Warn, subject, $"{path} is readable by others (mode {Convert.ToString(stat.Permissions, 8)})", $"chmod 600 {path}");
        }
        return new Finding(Level.Ok, subject, $"{path}: owner, type and mode are right ({stat.Size} bytes)");
    }

    private static async Task<Finding> CheckStoreAsync(SmtpEndpoint endpoint, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            await using var connection = await SmtpConnection.OpenAsync(endpoint, timeout.Token).ConfigureAwait(false);
            await connection.QuitAsync(timeout.Token).ConfigureAwait(false);
            return new Finding(Level.Ok, $"store {endpoint}", $"answers ({connection.Greeting})");
        }
        catch (Exception ex) when (NetworkFailure.IsTransientOrTimeout(ex))
        {
            return new Finding(Level.Fail, $"store {endpoint}", ex.Message, "start the mail store or fix Bridge:Legacy:Host/Port/Protocol/Tls");
        }
    }
}
