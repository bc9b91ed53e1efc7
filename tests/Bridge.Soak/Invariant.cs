// Job: the check at the end, once the faults stopped and every queue drained: each message a front accepted reaches
// each of its users in exactly one final place (the store's Maildir or that user's spool), its body as sent; each
// foreign writer's record is in exactly one place of its user; what the reader expunged counts as its one place; no
// record of unknown origin, none in the wrong user's mailboxes, every spool readable whole by Python's mailbox and
// with Dovecot's count; a duplicate is explained only by a kill of Bridge or a stop of the store while it was in
// flight (a fault that overlaps the span from its first copy to its last, 2 s either side: RFC 1047's window).
// Failure: every broken rule is a Finding (the first one of each kind names the message); nothing throws but a peer.
using System.Globalization;
using System.Text.RegularExpressions;
using Bridge.Tests.Support;

namespace Bridge.Soak;

internal sealed record Finding(string Kind, string Detail);

internal sealed record Copy(string Id, string User, string Place, string Fingerprint, DateTimeOffset When);

internal sealed record Outcome(int Messages, int Deliveries, int Foreign, int Copies, int Expunged, int Duplicates, int Explained,
    IReadOnlyList<Finding> Findings, IReadOnlyDictionary<string, int> DuplicatesBy);

internal static partial class Invariant
{
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(2);

    public static async Task<Outcome> CheckAsync(SoakWorld world, Ledger ledger, IReadOnlyDictionary<string, string> foreign)
    {
        var findings = new List<Finding>();
        var copies = new List<Copy>();
        foreach (var user in SoakWorld.Users)
        {
            copies.AddRange(StoreCopies(world, user, findings));
            copies.AddRange(await SpoolCopiesAsync(world, user, findings));
        }

        var expected = new Dictionary<(string Id, string User), SentMessage?>();
        foreach (var sent in ledger.Sent.Values)
        {
            foreach (var user in sent.Users)
            {
                expected[(sent.Id, user)] = sent;
            }
        }
        foreach (var (id, user) in foreign)
        {
            expected[(id, user)] = null;
        }
        var expunged = ledger.Expunged.ToHashSet();
        var perhaps = ledger.PerhapsExpunged.ToHashSet();
        var kills = ledger.Faults.Where(f => f.Kind is "bridge kill" or "store stop").ToList();
        var byKey = copies.GroupBy(c => (c.Id, c.User)).ToDictionary(g => g.Key, g => g.ToList());

        foreach (var copy in copies.Where(c => !expected.ContainsKey((c.Id, c.User))))
        {
            findings.Add(new Finding("misplaced or unknown", $"{copy.Id} in {copy.User}'s {copy.Place}, which it was never sent to"));
        }
        int duplicates = 0, explained = 0;
        var duplicatesBy = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var ((id, user), sent) in expected)
        {
            var found = byKey.GetValueOrDefault((id, user)) ?? [];
            var count = found.Count + (expunged.Contains((id, user)) ? 1 : 0);
            if (count == 0 && !perhaps.Contains((id, user)))
            {
                findings.Add(new Finding("lost", $"{id} for {user} ({(sent is null ? "foreign writer" : $"sent {sent.Sent:HH:mm:ss.fff} via {sent.Via}, {sent.Bytes} bytes")}) is nowhere"));
            }
            foreach (var copy in found.Where(c => sent is not null && c.Fingerprint != sent.Fingerprint))
            {
                findings.Add(new Finding("changed", $"{id} for {user} in the {copy.Place}: the body differs from what was sent"));
            }
            if (count > 1)
            {
                duplicates += count - 1;
                var shape = $"{user}: {string.Join('+', found.Select(c => c.Place).Order(StringComparer.Ordinal))}{(expunged.Contains((id, user)) ? "+expunged" : "")}";
                duplicatesBy[shape] = duplicatesBy.GetValueOrDefault(shape) + 1;
                var first = found.Count > 0 ? found.Min(c => c.When) : DateTimeOffset.MinValue;
                var last = found.Count > 0 ? found.Max(c => c.When) : DateTimeOffset.MaxValue;
                var from = (sent?.Sent is { } s && s < first ? s : first) - Slack;
                if (kills.Any(k => k.End >= from && k.Start <= last + Slack))
                {
                    explained += count - 1;
                }
                else
                {
                    findings.Add(new Finding("unexplained duplicate", $"{id} for {user}: {count} copies ({string.Join(", ", found.Select(c => $"{c.Place} {c.When:HH:mm:ss}"))}" +
                        $"{(expunged.Contains((id, user)) ? ", one expunged" : "")}) and no kill or store stop in that span"));
                }
            }
        }
        return new Outcome(ledger.Sent.Count, ledger.Sent.Values.Sum(s => s.Users.Count), foreign.Count, copies.Count, expunged.Count,
            duplicates, explained, findings, duplicatesBy);
    }

    private static IEnumerable<Copy> StoreCopies(SoakWorld world, string user, List<Finding> findings)
    {
        foreach (var folder in new[] { "new", "cur" })
        {
            var dir = Path.Combine(world.Store.HomeOf(user), "Maildir", folder);
            if (!Directory.Exists(dir))
            {
                continue;
            }
            foreach (var file in Directory.GetFiles(dir))
            {
                var bytes = File.ReadAllBytes(file);
                var id = SoakMessage.IdOf(bytes);
                if (id is null)
                {
                    findings.Add(new Finding("unknown record", $"{user}'s store: {Path.GetFileName(file)} has no X-Soak id"));
                    continue;
                }
                yield return new Copy(id, user, "store", SoakMessage.Fingerprint(bytes, fromMboxrd: false), File.GetLastWriteTimeUtc(file));
            }
        }
    }

    private static async Task<IReadOnlyList<Copy>> SpoolCopiesAsync(SoakWorld world, string user, List<Finding> findings)
    {
        var path = world.MailboxOf(user);
        if (!File.Exists(path))
        {
            return [];
        }
        IReadOnlyList<MboxMessage> records;
        try
        {
            records = await MboxReaders.PythonMailboxAsync(path);
        }
        catch (InvalidOperationException e)
        {
            findings.Add(new Finding("unreadable spool", $"{path}: {e.Message}"));
            return [];
        }
        var copies = new List<Copy>();
        foreach (var record in records)
        {
            var id = SoakMessage.IdOf(record.Raw);
            if (id is null)
            {
                if (!System.Text.Encoding.UTF8.GetString(record.Raw).Contains("FOLDER INTERNAL DATA", StringComparison.Ordinal))
                {
                    findings.Add(new Finding("unknown record", $"{user}'s spool: a record without an X-Soak id (a partial record?), From_ line '{record.FromLine}'"));
                }
                continue;
            }
            copies.Add(new Copy(id, user, "spool", SoakMessage.Fingerprint(record.Raw, fromMboxrd: true), FromLineTime(record.FromLine)));
        }
        // Dovecot reads the same mailbox (read-only) and must see the same messages.
        try
        {
            var seen = await world.Reader.FetchInboxAsync(user);
            if (seen.Count != copies.Count)
            {
                findings.Add(new Finding("dovecot disagrees", $"{user}'s spool: Python's mailbox reads {copies.Count} soak records, Dovecot {seen.Count} messages"));
            }
        }
        catch (Exception e) when (e is IOException or MailKit.ProtocolException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            findings.Add(new Finding("dovecot disagrees", $"{user}'s spool: Dovecot could not read it: {e.Message}"));
        }
        return copies;
    }

    /// <summary>The time on a From_ line ("sender  Thu Dec  3 10:00:00 2026", UTC here), or the epoch.</summary>
    private static DateTimeOffset FromLineTime(string from)
    {
        var match = AsctimePattern().Match(from);
        return match.Success && DateTime.TryParseExact(Regex.Replace(match.Value, " +", " "), "ddd MMM d HH:mm:ss yyyy", CultureInfo.InvariantCulture,
            DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var when)
            ? new DateTimeOffset(when, TimeSpan.Zero)
            : DateTimeOffset.UnixEpoch;
    }

    [GeneratedRegex(@"\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}\s*$")]
    private static partial Regex AsctimePattern();
}
