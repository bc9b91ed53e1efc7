using System.Buffers;
using System.Text;
using Bridge.Delivery.Spool;
using Bridge.Native;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>The group commit on files in a temporary folder owned by whoever runs the tests (no root): deliveries
/// queued while a batch waits for the mailbox go in one commit, in the order they came; one that fails is answered alone
/// and costs the others nothing; a batch that cannot be written leaves the mailbox exactly as it was; and a drain that
/// fails unexpectedly answers its batch and does not stop the next one.</summary>
public sealed class GroupCommitterTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("bridge-group-").FullName;
    private readonly InProcessMailboxLocks _locks = new();
    private readonly List<RecoveryNote> _notes = [];

    private string Spool => Path.Combine(_root, "spool");

    private AppendJournal Journal { get; }

    public GroupCommitterTests()
    {
        Directory.CreateDirectory(Spool);
        Directory.CreateDirectory(Path.Combine(_root, "journal"));
        Journal = new AppendJournal(Path.Combine(_root, "journal"));
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private SpoolSettings Settings(long maxMailboxBytes = 0, double lockSeconds = 5) =>
        new(Spool, maxMailboxBytes, TimeSpan.FromSeconds(lockSeconds), TimeSpan.FromMinutes(5), null);

    private GroupCommitter Committer(AppendJournal? journal = null) =>
        new(_locks, journal ?? Journal, NullLogger.Instance, note =>
        {
            lock (_notes)
            {
                _notes.Add(note);
            }
        });

    private static MboxRecord Record(int n, int bodyBytes = 20) => new("sender@example.org", "bob@example.org", "bob@example.org",
        new DateTime(2026, 12, 1, 9, 0, 0), ReadOnlyMemory<byte>.Empty,
        new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes($"Subject: message {n}\r\n\r\n{new string('x', bodyBytes)}")));

    private static readonly byte[] Earlier = "From old@example.org  Mon Nov 30 10:00:00 2026\nSubject: earlier\n\nearlier body\n\n"u8.ToArray();

    private string MailboxPath => Path.Combine(Spool, "bob");

    private void CreateMailbox() => File.WriteAllBytes(MailboxPath, Earlier);

    /// <summary>The subjects in the mailbox, in file order.</summary>
    private List<string> Subjects() => [.. File.ReadAllLines(MailboxPath).Where(l => l.StartsWith("Subject: ", StringComparison.Ordinal)).Select(l => l[9..])];

    /// <summary>Holds the mailbox's in-process lock, as a delivery in progress does, until disposed.</summary>
    private async Task<IDisposable> HoldAsync() =>
        await _locks.TryEnterAsync(MailboxPath, TimeSpan.FromSeconds(5), CancellationToken.None) ?? throw new InvalidOperationException("lock");

    private static Task<SpoolResult> Append(GroupCommitter committer, int n, SpoolSettings settings, uint? uid = null,
        int bodyBytes = 20, CancellationToken cancellationToken = default) =>
        committer.AppendAsync("bob", uid ?? Libc.Geteuid(), $"Q{n}", Record(n, bodyBytes), settings, cancellationToken);

    /// <summary>The first delivery, given time to be taken as a batch of its own (its drain then waits for the lock),
    /// then the others, which queue behind it as the next batch.</summary>
    private static async Task<Task<SpoolResult>[]> LeaderThenAsync(Task<SpoolResult> leader, Func<Task<SpoolResult>[]> others)
    {
        await Task.Delay(200);
        return [leader, .. others()];
    }

    [Fact]
    public async Task Deliveries_queued_while_the_mailbox_is_busy_go_in_one_commit_in_their_order()
    {
        CreateMailbox();
        var committer = Committer();
        Task<SpoolResult>[] appends;
        using (await HoldAsync())
        {
            appends = [.. await LeaderThenAsync(Append(committer, 1, Settings()), () => [.. Enumerable.Range(2, 7).Select(n => Append(committer, n, Settings()))])];
            await Task.Delay(100);
            Assert.All(appends, a => Assert.False(a.IsCompleted));
        }
        var results = await Task.WhenAll(appends);

        Assert.All(results, r => Assert.True(r.IsOk, r.ToString()));
        Assert.Equal(2, committer.Batches); // the first, taken before the others came, then all the others as one
        Assert.Equal(["earlier", .. Enumerable.Range(1, 8).Select(n => $"message {n}")], Subjects());
        Assert.Empty(Journal.Pending());
    }

    [Fact]
    public async Task A_batch_holds_at_most_MaxBatch_records()
    {
        CreateMailbox();
        var committer = Committer();
        Task<SpoolResult>[] appends;
        var count = GroupCommitter.MaxBatch + 10;
        using (await HoldAsync())
        {
            appends = [.. Enumerable.Range(1, count).Select(n => Append(committer, n, Settings()))];
        }
        var results = await Task.WhenAll(appends);

        Assert.All(results, r => Assert.True(r.IsOk, r.ToString()));
        Assert.InRange(committer.Batches, 2, 3);
        Assert.Equal(count, Subjects().Count - 1);
    }

    [Fact]
    public async Task Deliveries_one_after_another_each_commit_alone()
    {
        var committer = Committer();
        for (var n = 1; n <= 3; n++)
        {
            Assert.True((await Append(committer, n, Settings())).IsOk);
        }
        Assert.Equal(3, committer.Batches);
        Assert.Equal(["message 1", "message 2", "message 3"], Subjects());
    }

    [Fact]
    public async Task A_record_over_the_size_limit_is_refused_alone_and_the_others_of_its_batch_are_written()
    {
        CreateMailbox();
        var committer = Committer();
        var small = Record(1).Length;
        var settings = Settings(maxMailboxBytes: Earlier.Length + (4 * small) + 100);
        Task<SpoolResult>[] appends;
        using (await HoldAsync())
        {
            appends =
            [
                Append(committer, 1, settings),
                Append(committer, 2, settings),
                Append(committer, 3, settings, bodyBytes: 10_000),
                Append(committer, 4, settings),
            ];
        }
        var results = await Task.WhenAll(appends);

        Assert.Equal([SpoolProblem.None, SpoolProblem.None, SpoolProblem.Full, SpoolProblem.None], results.Select(r => r.Problem));
        Assert.Equal(["earlier", "message 1", "message 2", "message 4"], Subjects());
        Assert.Empty(Journal.Pending());
    }

    [Fact]
    public async Task A_delivery_whose_time_is_up_is_refused_alone()
    {
        CreateMailbox();
        var committer = Committer();
        using var cancelled = new CancellationTokenSource();
        Task<SpoolResult>[] appends;
        using (await HoldAsync())
        {
            appends = [Append(committer, 1, Settings()), Append(committer, 2, Settings(), cancellationToken: cancelled.Token), Append(committer, 3, Settings())];
            await cancelled.CancelAsync();
        }
        var results = await Task.WhenAll(appends);

        Assert.Equal([SpoolProblem.None, SpoolProblem.Stopping, SpoolProblem.None], results.Select(r => r.Problem));
        Assert.Equal(["earlier", "message 1", "message 3"], Subjects());
    }

    [Fact]
    public async Task A_delivery_for_another_owner_is_refused_alone()
    {
        CreateMailbox();
        var committer = Committer();
        Task<SpoolResult>[] appends;
        using (await HoldAsync())
        {
            appends = await LeaderThenAsync(Append(committer, 1, Settings()),
                () => [Append(committer, 2, Settings()), Append(committer, 3, Settings(), uid: Libc.Geteuid() + 1), Append(committer, 4, Settings())]);
        }
        var results = await Task.WhenAll(appends);

        Assert.Equal([SpoolProblem.None, SpoolProblem.None, SpoolProblem.Retry, SpoolProblem.None], results.Select(r => r.Problem));
        Assert.Equal("mailbox owner changed while queued, try again", results[2].Detail);
        Assert.Equal(["earlier", "message 1", "message 2", "message 4"], Subjects());
    }

    [Fact]
    public async Task A_batch_whose_journal_entry_cannot_be_written_leaves_the_mailbox_as_it_was()
    {
        CreateMailbox();
        var committer = Committer(new AppendJournal(Path.Combine(_root, "no such journal")));
        Task<SpoolResult>[] appends;
        using (await HoldAsync())
        {
            appends = [.. Enumerable.Range(1, 3).Select(n => Append(committer, n, Settings()))];
        }
        var results = await Task.WhenAll(appends);

        Assert.All(results, r => Assert.Equal(SpoolProblem.Failed, r.Problem));
        Assert.Contains("cannot write the append journal", results[0].Detail, StringComparison.Ordinal);
        Assert.Equal(Earlier, File.ReadAllBytes(MailboxPath));
        Assert.Equal(0, committer.Batches);
    }

    [Fact]
    public async Task A_mailbox_locked_beyond_the_lock_timeout_answers_the_whole_batch_busy_and_is_not_written()
    {
        CreateMailbox();
        var committer = Committer();
        using (await HoldAsync())
        {
            var results = await Task.WhenAll(Enumerable.Range(1, 3).Select(n => Append(committer, n, Settings(lockSeconds: 0.2))));
            Assert.All(results, r => Assert.Equal(SpoolProblem.Busy, r.Problem));
        }
        Assert.Equal(Earlier, File.ReadAllBytes(MailboxPath));
        Assert.True((await Append(committer, 4, Settings())).IsOk, "the queue goes on once the mailbox is free");
        Assert.Equal(["earlier", "message 4"], Subjects());
    }

    [Fact]
    public async Task A_wait_for_the_lock_ends_when_every_delivery_of_the_batch_is_cancelled()
    {
        CreateMailbox();
        var committer = Committer();
        using var cancelled = new CancellationTokenSource();
        using (await HoldAsync())
        {
            var pending = Append(committer, 1, Settings(lockSeconds: 30), cancellationToken: cancelled.Token);
            await Task.Delay(50);
            await cancelled.CancelAsync();
            var result = await pending.WaitAsync(TimeSpan.FromSeconds(5));
            Assert.Equal(SpoolProblem.Stopping, result.Problem);
        }
        Assert.Equal(Earlier, File.ReadAllBytes(MailboxPath));
    }

    [Fact]
    public async Task An_interrupted_append_is_settled_when_a_batch_opens_the_mailbox_and_recovery_is_told()
    {
        CreateMailbox();
        Assert.Equal(0, Libc.Lstat(MailboxPath, out var before));
        var crashed = Record(0, 10_000);
        Assert.Equal(0, Journal.Record("bob", AppendDigest.EntryFor(before, before.Size, [crashed], out _)));
        var sink = new RecordBytes();
        crashed.WriteTo(sink);
        using (var stream = new FileStream(MailboxPath, FileMode.Append))
        {
            stream.Write(sink.Bytes.ToArray().AsSpan(0, 4096 - Earlier.Length)); // cut short by a crash, at a page's end
        }

        Assert.True((await Append(Committer(), 1, Settings())).IsOk);

        Assert.Equal(["earlier", "message 1"], Subjects());
        Assert.Contains(_notes, n => n.Message.Contains("removed an incomplete record", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_drain_that_fails_unexpectedly_answers_its_batch_and_the_next_delivery_still_goes_through()
    {
        var committer = Committer();
        var broken = Settings() with { Directory = null! }; // the drain throws (not a state a caller can make; a stand-in for a bug)

        var failed = await Append(committer, 1, broken).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(SpoolProblem.Failed, failed.Problem);
        Assert.Equal("internal error while appending to the mailbox", failed.Detail);

        Assert.True((await Append(committer, 2, Settings()).WaitAsync(TimeSpan.FromSeconds(5))).IsOk);
        Assert.Equal(["message 2"], Subjects());
    }
}
