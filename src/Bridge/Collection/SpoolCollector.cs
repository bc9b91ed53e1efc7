// Job: collect one user's spool mailbox into the mail store, the way the Mac OS X mail store did at login: drain,
// the collector after fallback and collect at login all run this. The mailbox is locked as for a delivery; its
// records are relayed in order through StoreClient (the one relay path: its pool and breaker, one attempt per message),
// each as it was delivered (MboxRecords: sender from Return-Path, quoting of Bridge:Spool:Format undone, delivery's
// headers removed; BODY=8BITMIME and SMTPUTF8 where the message needs them), recipient the mailbox's user; the first
// refusal stops that mailbox. After each message the store accepted, the journal's CollectCursor says so; when the
// collection ends, the delivered prefix is cut out once, in place (MailboxCut: the mailbox keeps its inode). Only a
// user's own mailbox is collected (OwnerOf: the one rule for which spool files drain and the collectors move).
// Failure: never throws for the disk or the store; a mailbox that cannot be collected keeps all its mail (Ok false);
// a kill between the store's acceptance and the cursor (a moment) sends that one message again, never loses one.
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery.Smtp;
using Bridge.Delivery.Spool;
using Bridge.Delivery.Store;

namespace Bridge.Collection;

public static class SpoolCollector
{
    /// <summary>The user whose own mailbox the spool file <paramref name="name"/> is (the file of their first short name,
    /// not an alias's or a secondary name's), or null: the one rule for which spool files drain and the collectors move.</summary>
    internal static LocalUser? OwnerOf(SettingsSnapshot snapshot, string name)
    {
        var route = snapshot.Routing.Resolve(name, snapshot.Options.LocalDomains.FirstOrDefault() ?? "localhost");
        return route.Recipient is { } routed && routed.User.ShortName == name && route.Recipients.Count == 1 ? routed.User : null;
    }

    /// <summary>One mailbox, at most <paramref name="maxMessages"/> of its messages (the daemon's collector takes it in
    /// batches, so deliveries to it do not wait long for its locks). More: messages were left for the next batch.</summary>
    /// <param name="until">Past this time no further message is begun (collect at login); null: no limit.</param>
    /// <param name="continues">The caller takes the next batch soon (the daemon's collector): when messages are left,
    /// the delivered ones stay in place behind the cursor instead of being cut out now; they are cut once, at the end.</param>
    internal static async Task<(bool Ok, int Relayed, bool More, bool StoreDown)> DrainMailboxAsync(SettingsSnapshot snapshot, StoreClient store, string name,
        InProcessMailboxLocks locks, AppendJournal journal, bool dryRun, int maxMessages, TextWriter output, DateTime? until,
        CancellationToken cancellationToken, bool continues = false)
    {
        var endpoint = snapshot.Store.Endpoint;
        var domain = snapshot.Options.LocalDomains.FirstOrDefault() ?? "localhost";
        if (!ShortName.IsSafeFileName(name))
        {
            await output.WriteLineAsync($"drain {name}: not a safe spool file name").ConfigureAwait(false);
            return (false, 0, false, false);
        }
        // The owner a delivery would give this mailbox (its user's, or Bridge's for a configured user without an
        // account); not checked for a name Bridge does not route (a mailbox of another program's).
        // Only a user's own mailbox (the file named by its first short name, owned by it): a file someone planted under
        // another name (an alias, a secondary short name) is not relayed with Bridge's standing at the store.
        if (OwnerOf(snapshot, name) is not { } user)
        {
            await output.WriteLineAsync($"drain {name}: left alone: no user of Bridge's has {name} as first short name").ConfigureAwait(false);
            return (false, 0, false, false);
        }
        uint? owner = user.MailboxOwner;
        var (mailbox, status, notes) = await LockedMailbox.OpenExistingAsync(name, owner, snapshot.Spool, locks, journal, cancellationToken).ConfigureAwait(false);
        foreach (var note in notes)
        {
            await output.WriteLineAsync($"drain {name}: recovery: {note.Message}").ConfigureAwait(false);
        }
        if (mailbox is null)
        {
            await output.WriteLineAsync($"drain {name}: left alone: {status}").ConfigureAwait(false);
            return (false, 0, false, false);
        }
        using (mailbox)
        {
            var reader = mailbox.OpenReader();
            if (reader < 0)
            {
                await output.WriteLineAsync($"drain {name}: left alone: the mailbox cannot be read").ConfigureAwait(false);
                return (false, 0, false, false);
            }
            using var file = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(reader, ownsHandle: true), FileAccess.Read);
            return await DrainAsync(store, mailbox, file, reader, journal, $"{name}@{domain}", endpoint, snapshot.Spool.Format, snapshot.Options.MaxMessageBytes,
                dryRun, maxMessages, output, until, continues, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<(bool Ok, int Relayed, bool More, bool StoreDown)> DrainAsync(StoreClient store, LockedMailbox mailbox, FileStream file, int reader,
        AppendJournal journal,
        string recipient, SmtpEndpoint endpoint, MboxFormat format, long maxMessageBytes, bool dryRun, int maxMessages, TextWriter output, DateTime? until,
        bool continues, CancellationToken cancellationToken)
    {
        var name = mailbox.Name;
        var cursor = CollectCursor.Find(journal, name, reader, out var dropped);
        if (dropped is not null)
        {
            await output.WriteLineAsync($"drain {name}: {dropped}").ConfigureAwait(false);
        }
        var more = false;
        var relayed = 0;
        var ok = true;
        var storeDown = false; // the store cannot be reached (not: it refused one message)
        file.Position = cursor?.End ?? 0;
        using (var records = MboxRecords.Read(file, format, cursor?.End ?? 0, maxMessageBytes).GetEnumerator())
        {
            while (true)
            {
                // A read error of the spool file is this mailbox's problem, never taken for the store being down.
                MboxRecordData record;
                try
                {
                    if (!records.MoveNext())
                    {
                        break;
                    }
                    record = records.Current;
                }
                catch (IOException ex)
                {
                    await output.WriteLineAsync($"drain {name}: the mailbox cannot be read ({ex.Message}); the rest stays in the spool").ConfigureAwait(false);
                    ok = false;
                    break;
                }
                if (record.TooLarge)
                {
                    await output.WriteLineAsync($"drain {name}: message {relayed + 1} is larger than Bridge:MaxMessageBytes ({maxMessageBytes}); " +
                        "it and the rest stay in the spool").ConfigureAwait(false);
                    ok = false;
                    break;
                }
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
                var relay = new StoreRelay(name, record.Sender, [new StoreRecipient(recipient, null)], MailParameters(record), default, record.Message);
                var result = await store.RelayAsync(relay, StoreRetries.Once, cancellationToken).ConfigureAwait(false);
                var (reply, answer) = result.Replies[0];
                if (answer == StoreAnswer.Unavailable && cancellationToken.IsCancellationRequested)
                {
                    // Stopped (or a login's hard stop) before the store had the message: the caller says so, as it always did.
                    throw new OperationCanceledException(cancellationToken);
                }
                if (answer == StoreAnswer.OutcomeUnknown)
                {
                    await output.WriteLineAsync($"drain {name}: store {result.Endpoint}: {result.Problem}; message {relayed + 1} and the rest stay in the spool " +
                        "(a later drain may deliver that message to the store a second time)").ConfigureAwait(false);
                    ok = false;
                    storeDown = true;
                    break;
                }
                if (answer == StoreAnswer.Unavailable)
                {
                    await output.WriteLineAsync($"drain {name}: store {result.Endpoint}: {result.Problem}; the rest stays in the spool").ConfigureAwait(false);
                    ok = false;
                    storeDown = true;
                    break;
                }
                if (!reply.IsSuccess)
                {
                    await output.WriteLineAsync($"drain {name}: the store refused message {relayed + 1} ({reply}); it and the rest stay in the spool").ConfigureAwait(false);
                    ok = false;
                    break;
                }
                relayed++;
                // Remembered at once: whatever happens next, this message is never sent to the store again.
                cursor = CollectCursor.After(reader, record.Start, record.End);
                if (cursor is null || cursor.Save(journal, name, durable: false) != 0)
                {
                    await output.WriteLineAsync($"drain {name}: the journal cannot record how far the collection got; stopping here").ConfigureAwait(false);
                    ok = false;
                    break;
                }
                if (!Console.IsOutputRedirected && output == Console.Out)
                {
                    await output.WriteAsync($"\rdrain {name}: {relayed} relayed").ConfigureAwait(false);
                }
            }
        }
        if (dryRun)
        {
            return (true, 0, false, false);
        }
        var delivered = cursor?.End ?? 0;
        if (more && ok && continues)
        {
            cursor?.Save(journal, name, durable: true); // the next batch goes on from here; the prefix is cut at the end
            return (true, relayed, true, false);
        }
        if (delivered > 0)
        {
            var forgotten = false;
            var error = MailboxCut.Remove(mailbox.Fd, mailbox.Path, name, 0, delivered, journal,
                committed: () => { CollectCursor.Forget(journal, name); forgotten = true; });
            if (error is not null)
            {
                if (!forgotten)
                {
                    cursor?.Save(journal, name, durable: true);
                }
                await output.WriteLineAsync($"drain {name}: {relayed} message(s) were relayed but could not be removed yet ({error}); " +
                    (forgotten ? "the journal finishes the removal before the mailbox is used again" : "the next collection removes them")).ConfigureAwait(false);
                return (false, relayed, false, storeDown);
            }
        }
        Native.Libc.Fstat(mailbox.Fd, out var after);
        await output.WriteLineAsync($"drain {name}: {relayed} relayed to {endpoint}, {after.Size} bytes left in the spool").ConfigureAwait(false);
        return (ok, relayed, more && ok, storeDown);
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
