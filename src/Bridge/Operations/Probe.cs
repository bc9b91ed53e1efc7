// Job: `mailbridge probe ADDRESS [--via HOST:PORT] [--keep] [--wait SECONDS]`: send one real, recognisable message
// (Message-Id <bridge-probe-...>, null sender, so it never bounces to anyone) through the MTA (default
// 127.0.0.1:25) or straight to Bridge, and follow it hop by hop, each with its time: the MTA's reply and queue id;
// for a spool recipient the record in the mailbox with Bridge's own queue id from its Received header (then the
// probe is removed from the mailbox under its locks unless --keep); for a store recipient Bridge's 250 (given only
// after the store accepted) or the message leaving the MTA's queue. On the first hop that fails: its reply, or the
// MTA's deferral reason from its queue (postqueue -j, Postfix; MAIL_CONFIG selects its configuration).
// Failure: exit code 1 and a FAIL line naming the hop; nothing is thrown.
using System.Buffers;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery;
using Bridge.Delivery.Bounces;
using Bridge.Delivery.Smtp;
using Bridge.Delivery.Spool;
using Bridge.Routing;

namespace Bridge.Operations;

public static partial class Probe
{
    [GeneratedRegex(@"queued as ([0-9A-Za-z]+)")]
    private static partial Regex QueuedAs();

    public static async Task<int> RunAsync(SettingsSnapshot snapshot, string address, string via, bool keep, TimeSpan wait, TextWriter output,
        CancellationToken cancellationToken)
    {
        var options = snapshot.Options;
        var clock = Stopwatch.StartNew();
        var routed = AddressReport.Route(snapshot, address);
        if (routed.Recipient is not { } route)
        {
            await output.WriteLineAsync($"FAIL bridge: {address}: {routed.Refusal} (nothing was sent)").ConfigureAwait(false);
            return 1;
        }
        var mode = route.User.ModeIn(options.Mode);
        if (!BounceSender.TryParseRelay(via, out var host, out var port))
        {
            await output.WriteLineAsync($"FAIL probe: --via '{via}' is not HOST:PORT").ConfigureAwait(false);
            return 1;
        }
        var direct = port == options.Listen.Port && host is "127.0.0.1" or "localhost" || host == options.Listen.Address && port == options.Listen.Port;
        var id = $"bridge-probe-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8))}";
        var messageId = $"<{id}@{options.ServerName}>";
        var message = Encoding.ASCII.GetBytes($"From: Bridge probe <MAILER-DAEMON@{options.ServerName}>\r\nTo: <{route.Address}>\r\n" +
            $"Subject: Bridge probe {id}\r\nMessage-Id: {messageId}\r\nX-Bridge-Probe: {id}\r\n\r\nA test message sent by `mailbridge probe`; it is removed again unless --keep was given.");

        // Hop 1: the MTA (or Bridge itself) takes the message.
        var first = direct ? $"bridge [{host}]:{port}" : $"mta [{host}]:{port}";
        DeliveryStatus reply;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromMinutes(2));
            var endpoint = new SmtpEndpoint(host, port, StoreProtocol.Smtp, StoreTls.None, null, null, null, options.ServerName, 1, Chunking: false);
            await using var connection = await SmtpConnection.OpenAsync(endpoint, timeout.Token).ConfigureAwait(false);
            reply = (await connection.SendAsync("", [route.Address], new Dictionary<string, string>(), default,
                new ReadOnlySequence<byte>(message), timeout.Token).ConfigureAwait(false))[0];
            await connection.QuitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StoreOutcomeUnknownException || NetworkFailure.IsTransientOrTimeout(ex))
        {
            await output.WriteLineAsync($"FAIL {first}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
        if (!reply.IsSuccess)
        {
            await output.WriteLineAsync($"FAIL {first}: refused the probe: {reply}").ConfigureAwait(false);
            return 1;
        }
        await output.WriteLineAsync($"OK   {Seconds(clock)} {first}: accepted {messageId} ({reply})").ConfigureAwait(false);
        var mtaQueueId = direct ? null : QueuedAs().Match(reply.Text) is { Success: true } m ? m.Groups[1].Value : null;

        if (mode == BridgeMode.Legacy)
        {
            if (direct)
            {
                await output.WriteLineAsync($"OK   {Seconds(clock)} store {snapshot.Store.Endpoint}: accepted (Bridge answers 250 only after the store did)").ConfigureAwait(false);
                return 0;
            }
            var (gone, reason) = await WaitForQueueAsync(mtaQueueId, wait, cancellationToken).ConfigureAwait(false);
            if (gone)
            {
                await output.WriteLineAsync($"OK   {Seconds(clock)} bridge -> store {snapshot.Store.Endpoint}: the probe left the MTA's queue " +
                    "(Bridge answers 250 only after the store accepted; a refusal for good would be in the MTA's log)").ConfigureAwait(false);
                return 0;
            }
            await output.WriteLineAsync($"FAIL {Seconds(clock)} mta: still queued after {wait.TotalSeconds:0} s{(reason is null ? "" : $": {reason}")}").ConfigureAwait(false);
            return 1;
        }

        // Spool: the record appears in the first short name's mailbox.
        var mailbox = Path.Combine(options.Spool.Directory, route.User.ShortName);
        var deadline = DateTime.UtcNow + wait;
        (long Start, long End, string? BridgeId)? found = null;
        while (found is null && DateTime.UtcNow < deadline)
        {
            found = FindRecord(mailbox, messageId, options.ServerName);
            if (found is null)
            {
                await Task.Delay(200, cancellationToken).ConfigureAwait(false);
            }
        }
        if (found is not { } record)
        {
            var (_, reason) = direct ? (true, null) : await WaitForQueueAsync(mtaQueueId, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
            await output.WriteLineAsync($"FAIL {Seconds(clock)} bridge: the probe is not in {mailbox} after {wait.TotalSeconds:0} s" +
                (reason is null ? "" : $"; the MTA holds it: {reason}")).ConfigureAwait(false);
            return 1;
        }
        await output.WriteLineAsync($"OK   {Seconds(clock)} bridge: received as {record.BridgeId ?? "(no Received header of Bridge's)"}, " +
            $"written to {mailbox} at offset {record.Start}").ConfigureAwait(false);
        if (keep)
        {
            return 0;
        }
        var journal = new AppendJournal(options.Spool.JournalDirectory);
        var (locked, status, _) = await LockedMailbox.OpenExistingAsync(route.User.ShortName, route.User.MailboxOwner, snapshot.Spool, new InProcessMailboxLocks(),
            journal, cancellationToken).ConfigureAwait(false);
        if (locked is null)
        {
            await output.WriteLineAsync($"WARN probe: could not lock {mailbox} to remove the probe ({status}); it stays").ConfigureAwait(false);
            return 0;
        }
        using (locked)
        {
            var again = FindRecord(mailbox, messageId, options.ServerName); // under the locks: the offsets are final
            var error = again is { } r ? MailboxCut.Remove(locked.Fd, locked.Path, locked.Name, r.Start, r.End, journal) : null;
            await output.WriteLineAsync(error is null ? $"OK   {Seconds(clock)} probe: removed from {mailbox}" : $"WARN probe: not removed from {mailbox}: {error}")
                .ConfigureAwait(false);
        }
        return 0;
    }

    private static string Seconds(Stopwatch clock) => $"{clock.Elapsed.TotalSeconds,6:0.000}s";

    /// <summary>The record holding <paramref name="messageId"/>: its byte range and Bridge's queue id from its Received header.</summary>
    private static (long Start, long End, string? BridgeId)? FindRecord(string mailbox, string messageId, string serverName)
    {
        try
        {
            using var file = new FileStream(mailbox, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            var start = 0L;
            foreach (var record in MboxRecords.Read(file))
            {
                var text = Encoding.Latin1.GetString(record.Message);
                if (text.Contains($"Message-Id: {messageId}", StringComparison.OrdinalIgnoreCase))
                {
                    return (start, record.End, ReceivedHeader.TryReadQueueId(text, serverName, out var bridgeId) ? bridgeId : null);
                }
                start = record.End;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // not there (yet)
        }
        return null;
    }

    /// <summary>Waits until the MTA's queue no longer holds <paramref name="queueId"/> (Postfix: postqueue -j); false and
    /// the deferral reason when it is still there at the end. Without postqueue or a queue id: true (nothing to wait for).</summary>
    private static async Task<(bool Gone, string? Reason)> WaitForQueueAsync(string? queueId, TimeSpan wait, CancellationToken cancellationToken)
    {
        var postqueue = ConfigTool.Find("postqueue");
        if (postqueue is null || queueId is null)
        {
            return (true, null);
        }
        string[] args = Environment.GetEnvironmentVariable("MAIL_CONFIG") is { Length: > 0 } config ? ["-c", config, "-j"] : ["-j"];
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            var (ok, output) = await ConfigTool.RunAsync(postqueue, args, cancellationToken).ConfigureAwait(false);
            string? reason = null;
            var present = false;
            foreach (var line in ok ? output.Split('\n', StringSplitOptions.RemoveEmptyEntries) : [])
            {
                try
                {
                    using var json = JsonDocument.Parse(line);
                    if (json.RootElement.GetProperty("queue_id").GetString() == queueId)
                    {
                        present = true;
                        foreach (var recipient in json.RootElement.GetProperty("recipients").EnumerateArray())
                        {
                            reason ??= recipient.TryGetProperty("delay_reason", out var why) ? why.GetString() : null;
                        }
                    }
                }
                catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
                {
                    // not a queue entry
                }
            }
            if (!present)
            {
                return (true, null);
            }
            if (DateTime.UtcNow >= deadline)
            {
                return (false, reason ?? "no delivery attempt yet");
            }
            await Task.Delay(500, cancellationToken).ConfigureAwait(false);
        }
    }
}
