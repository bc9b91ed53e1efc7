// Job: `bridge drain`: what the Mac OS X mail store did at login: take the waiting mail out of /var/mail spools
// and deliver it to the store (Legacy target), to move from Spool to Legacy mode without losing what was spooled.
// Each mailbox is locked as for a delivery; its records are relayed in order, each as it was delivered (MboxRecords:
// sender from Return-Path, quoting of Bridge:Spool:Format undone, delivery's headers removed; BODY=8BITMIME and
// SMTPUTF8 where the message needs them), recipient the mailbox's user; the first refusal stops that mailbox; only the relayed records are removed
// (MailboxTrim.KeepFrom: new file + rename, crash-safe). --dry-run only lists.
// Failure: a mailbox that cannot be drained keeps all its mail and makes the exit code 1; a crash after
// relaying but before the removal can only cause duplicates at the next drain, never a loss.
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery.Smtp;
using Bridge.Delivery.Spool;
using Bridge.Routing;

namespace Bridge.Operations;

public static class SpoolDrain
{
    public static async Task<int> RunAsync(SettingsSnapshot snapshot, string? user, bool dryRun, TextWriter output, CancellationToken cancellationToken)
    {
        var options = snapshot.Options;
        if (string.IsNullOrWhiteSpace(options.Legacy.Host))
        {
            await output.WriteLineAsync("drain: set Bridge:Legacy:Host (and Port, Protocol): drain delivers to the mail store").ConfigureAwait(false);
            return 78;
        }
        var names = user is not null
            ? [user.ToLowerInvariant()]
            : Directory.GetFiles(options.Spool.Directory).Select(Path.GetFileName).OfType<string>().Where(ShortName.IsSafeFileName).Order().ToList();
        var journal = new AppendJournal(options.Spool.JournalDirectory);
        var locks = new InProcessMailboxLocks();
        var failed = 0;
        foreach (var name in names)
        {
            if (!(await DrainMailboxAsync(snapshot, name, locks, journal, dryRun, int.MaxValue, output, null, cancellationToken).ConfigureAwait(false)).Ok)
            {
                failed++;
            }
        }
        return failed > 0 ? 1 : 0;
    }

    /// <summary>One mailbox, at most <paramref name="maxMessages"/> of its messages (the daemon's collector takes it in
    /// batches, so deliveries to it do not wait long for its locks). More: messages were left for the next batch.</summary>
    /// <param name="until">Past this time no further message is begun (collect at login); null: no limit.</param>
    internal static async Task<(bool Ok, int Relayed, bool More)> DrainMailboxAsync(SettingsSnapshot snapshot, string name,
        InProcessMailboxLocks locks, AppendJournal journal, bool dryRun, int maxMessages, TextWriter output, DateTime? until,
        CancellationToken cancellationToken)
    {
        var endpoint = snapshot.Store.Endpoint;
        var domain = snapshot.Options.LocalDomains.FirstOrDefault() ?? "localhost";
        if (!ShortName.IsSafeFileName(name))
        {
            await output.WriteLineAsync($"drain {name}: not a safe spool file name").ConfigureAwait(false);
            return (false, 0, false);
        }
        // The owner a delivery would give this mailbox (its user's, or Bridge's for a configured user without an
        // account); not checked for a name Bridge does not route (a mailbox of another program's).
        var route = AddressReport.Route(snapshot, $"{name}@{domain}");
        uint? owner = route.Recipient is { } routed && routed.User.ShortName == name ? routed.User.Uid ?? Native.Libc.Geteuid() : null;
        var (mailbox, status, notes) = await LockedMailbox.OpenExistingAsync(name, owner, snapshot.Spool, locks, journal, cancellationToken).ConfigureAwait(false);
        foreach (var note in notes)
        {
            await output.WriteLineAsync($"drain {name}: recovery: {note.Message}").ConfigureAwait(false);
        }
        if (mailbox is null)
        {
            await output.WriteLineAsync($"drain {name}: left alone: {status}").ConfigureAwait(false);
            return (false, 0, false);
        }
        using (mailbox)
        {
            return await DrainAsync(mailbox, name, $"{name}@{domain}", endpoint, snapshot.Spool.Format, dryRun, maxMessages, output, until,
                cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<(bool Ok, int Relayed, bool More)> DrainAsync(LockedMailbox mailbox, string name, string recipient, SmtpEndpoint endpoint,
        MboxFormat format, bool dryRun, int maxMessages, TextWriter output, DateTime? until, CancellationToken cancellationToken)
    {
        var more = false;
        using var file = new FileStream(mailbox.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite); // no flock; OFD lock held
        var relayed = 0;
        var keepFrom = 0L;
        var ok = true;
        SmtpConnection? connection = null;
        try
        {
            foreach (var record in MboxRecords.Read(file, format))
            {
                if (relayed >= maxMessages || DateTime.UtcNow > until)
                {
                    more = true; // the next batch takes the rest
                    break;
                }
                if (dryRun)
                {
                    await output.WriteLineAsync($"drain {name}: would relay a message from <{record.Sender}> ({record.Message.Length} bytes) to {recipient}").ConfigureAwait(false);
                    continue;
                }
                connection ??= await SmtpConnection.OpenAsync(endpoint, cancellationToken).ConfigureAwait(false);
                var reply = (await connection.SendAsync(record.Sender, [recipient], MailParameters(record), default,
                    record.Message, cancellationToken).ConfigureAwait(false))[0];
                if (!reply.IsSuccess)
                {
                    await output.WriteLineAsync($"drain {name}: the store refused message {relayed + 1} ({reply}); it and the rest stay in the spool").ConfigureAwait(false);
                    ok = false;
                    break;
                }
                relayed++;
                keepFrom = record.End;
                if (!Console.IsOutputRedirected && output == Console.Out)
                {
                    await output.WriteAsync($"\rdrain {name}: {relayed} relayed").ConfigureAwait(false);
                }
            }
        }
        catch (StoreOutcomeUnknownException ex)
        {
            await output.WriteLineAsync($"drain {name}: store {endpoint}: {ex.Message}; message {relayed + 1} and the rest stay in the spool " +
                "(a later drain may deliver that message to the store a second time)").ConfigureAwait(false);
            ok = false;
        }
        catch (Exception ex) when (NetworkFailure.IsTransient(ex))
        {
            await output.WriteLineAsync($"drain {name}: store {endpoint}: {ex.Message}; the rest stays in the spool").ConfigureAwait(false);
            ok = false;
        }
        finally
        {
            if (connection is not null)
            {
                await connection.QuitAsync(cancellationToken).ConfigureAwait(false);
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }

        if (relayed > 0)
        {
            var error = MailboxTrim.KeepFrom(mailbox, keepFrom);
            if (error is not null)
            {
                await output.WriteLineAsync($"drain {name}: {relayed} message(s) were relayed but could not be removed ({error}): a later drain relays them again").ConfigureAwait(false);
                return (false, relayed, false);
            }
        }
        if (!dryRun)
        {
            await output.WriteLineAsync($"drain {name}: {relayed} relayed to {endpoint}, {mailbox.Stat.Size - keepFrom} bytes left in the spool").ConfigureAwait(false);
        }
        return (ok, relayed, more && ok);
    }

    /// <summary>What the message needs from the store: BODY=8BITMIME for 8-bit bytes, SMTPUTF8 for UTF-8 in the
    /// sender or the header section (RFC 6152, RFC 6531); sent where the store offers them.</summary>
    internal static Dictionary<string, string> MailParameters(MboxRecordData record)
    {
        var parameters = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var eightBit = false;
        var headerEightBit = false;
        var inHeaders = true;
        var previous = (byte)0;
        foreach (var segment in record.Message)
        {
            foreach (var b in segment.Span)
            {
                eightBit |= b >= 0x80;
                headerEightBit |= inHeaders && b >= 0x80;
                if (inHeaders && b == (byte)'\n' && previous == (byte)'\n')
                {
                    inHeaders = false;
                }
                previous = b == (byte)'\r' ? previous : b;
            }
        }
        if (eightBit)
        {
            parameters["BODY"] = "8BITMIME";
        }
        if (headerEightBit || record.Sender.Any(c => c >= 0x80))
        {
            parameters["SMTPUTF8"] = "";
        }
        return parameters;
    }
}
