using System.Buffers;
using System.Text;
using Bridge.Delivery.Spool;
using Bridge.Native;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>The append protocol's two policies, on real files in a temporary folder owned by whoever runs the tests
/// (no root): within one mailbox a refused record is refused alone; across mailboxes, all or none.</summary>
public sealed class AppendBatchTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("bridge-batch-").FullName;

    private string Spool => Path.Combine(_root, "spool");

    private string JournalDirectory => Path.Combine(_root, "journal");

    public AppendBatchTests()
    {
        Directory.CreateDirectory(Spool);
        Directory.CreateDirectory(JournalDirectory);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private SpoolSettings Settings(long maxMailboxBytes) =>
        new(Spool, maxMailboxBytes, TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(5), Libc.Getegid());

    private static MboxRecord Record(string subject, int bodyBytes = 10) => new("alice@example.org", "bob@example.org", "bob@example.org",
        new DateTime(2026, 12, 1, 9, 0, 0), ReadOnlyMemory<byte>.Empty,
        new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes($"Subject: {subject}\r\n\r\n{new string('x', bodyBytes)}")));

    private async Task<LockedMailbox> OpenAsync(string name, AppendJournal journal)
    {
        var opened = await LockedMailbox.OpenForDeliveryAsync(name, Libc.Geteuid(), Settings(0), new InProcessMailboxLocks(), journal, CancellationToken.None);
        Assert.True(opened.Result.IsOk, opened.Result.ToString());
        return opened.Mailbox!;
    }

    private string Mailbox(string name) => File.ReadAllText(Path.Combine(Spool, name));

    private static int Records(string mbox) => mbox.Split('\n').Count(l => l.StartsWith("From ", StringComparison.Ordinal));

    [Fact]
    public async Task Within_one_mailbox_a_record_over_the_limit_is_refused_alone_and_the_others_are_written_in_order()
    {
        var journal = new AppendJournal(JournalDirectory);
        var small = Record("one").Length;
        using (var mailbox = await OpenAsync("bob", journal))
        {
            var batch = new AppendBatch(journal, NullLogger.Instance, allOrNone: false);
            batch.Add(mailbox, Record("one"), CancellationToken.None);
            batch.Add(mailbox, Record("big", 5000), CancellationToken.None);
            batch.Add(mailbox, Record("three"), CancellationToken.None);
            var results = batch.Commit(maxMailboxBytes: (3 * small) + 10);
            Assert.Equal([SpoolProblem.None, SpoolProblem.Full, SpoolProblem.None], results.Select(r => r.Problem));
            Assert.Equal("552 5.2.2 Mailbox bob is full", results[1].ToStatus("Q").ToString());
        }
        var text = Mailbox("bob");
        Assert.Equal(2, Records(text));
        Assert.True(text.IndexOf("Subject: one", StringComparison.Ordinal) < text.IndexOf("Subject: three", StringComparison.Ordinal));
        Assert.DoesNotContain("Subject: big", text, StringComparison.Ordinal);
        Assert.Empty(journal.Pending());
    }

    [Fact]
    public async Task Within_one_mailbox_a_delivery_whose_time_is_up_is_refused_alone()
    {
        var journal = new AppendJournal(JournalDirectory);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        using (var mailbox = await OpenAsync("bob", journal))
        {
            var batch = new AppendBatch(journal, NullLogger.Instance, allOrNone: false);
            batch.Add(mailbox, Record("one"), cancelled.Token);
            batch.Add(mailbox, Record("two"), CancellationToken.None);
            var results = batch.Commit(0);
            Assert.Equal([SpoolProblem.Stopping, SpoolProblem.None], results.Select(r => r.Problem));
            Assert.Equal("421 4.3.2 System shutting down, try again later", results[0].ToStatus("Q").ToString());
        }
        Assert.Equal(1, Records(Mailbox("bob")));
    }

    [Fact]
    public async Task Across_mailboxes_one_over_its_limit_is_left_out_and_the_others_get_the_message()
    {
        var journal = new AppendJournal(JournalDirectory);
        File.WriteAllText(Path.Combine(Spool, "carol"), "From x  Tue Dec  1 09:00:00 2026\n\n" + new string('y', 4000) + "\n\n");
        var bob = await OpenAsync("bob", journal);
        var carol = await OpenAsync("carol", journal);
        var dave = await OpenAsync("dave", journal);
        var batch = new AppendBatch(journal, NullLogger.Instance, allOrNone: true);
        batch.Add(bob, Record("m"), CancellationToken.None);
        batch.Add(carol, Record("m"), CancellationToken.None);
        batch.Add(dave, Record("m"), CancellationToken.None);
        var results = batch.Commit(maxMailboxBytes: 1000);
        new[] { bob, carol, dave }.ToList().ForEach(m => m.Dispose());
        Assert.Equal([SpoolProblem.None, SpoolProblem.Full, SpoolProblem.None], results.Select(r => r.Problem));
        Assert.Equal(1, Records(Mailbox("bob")));
        Assert.Equal(1, Records(Mailbox("dave")));
        Assert.DoesNotContain("Subject: m", Mailbox("carol"), StringComparison.Ordinal);
        Assert.Empty(journal.Pending());
    }

    [Fact]
    public async Task Across_mailboxes_a_cancelled_message_writes_nothing_anywhere()
    {
        var journal = new AppendJournal(JournalDirectory);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        var bob = await OpenAsync("bob", journal);
        var dave = await OpenAsync("dave", journal);
        var batch = new AppendBatch(journal, NullLogger.Instance, allOrNone: true);
        batch.Add(bob, Record("m"), cancelled.Token);
        batch.Add(dave, Record("m"), cancelled.Token);
        var results = batch.Commit(0);
        bob.Dispose();
        dave.Dispose();
        Assert.All(results, r => Assert.Equal(SpoolProblem.Stopping, r.Problem));
        Assert.Equal("", Mailbox("bob"));
        Assert.Equal("", Mailbox("dave"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Without_its_journal_entry_nothing_is_appended(bool allOrNone)
    {
        var journal = new AppendJournal(JournalDirectory);
        var bob = await OpenAsync("bob", journal);
        var dave = await OpenAsync("dave", journal);
        // The journal directory becomes a file: no entry can be written in it (ENOTDIR).
        Directory.Delete(JournalDirectory);
        File.WriteAllText(JournalDirectory, "");
        var batch = new AppendBatch(journal, NullLogger.Instance, allOrNone);
        batch.Add(bob, Record("m"), CancellationToken.None);
        batch.Add(dave, Record("m"), CancellationToken.None);
        var results = batch.Commit(0);
        bob.Dispose();
        dave.Dispose();
        Assert.All(results, r =>
        {
            Assert.Equal(SpoolProblem.Failed, r.Problem);
            Assert.StartsWith($"451 4.3.0 Local error: cannot write the append journal in {JournalDirectory}: ", r.ToStatus("Q").ToString(), StringComparison.Ordinal);
        });
        Assert.Equal("", Mailbox("bob"));
        Assert.Equal("", Mailbox("dave"));
    }
}
