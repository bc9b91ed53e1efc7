using System.Text;
using Bridge.Delivery.Spool;
using Bridge.Native;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>MailboxCut on files in a temporary folder (no root): a range removed in place, the inode kept, and a crash
/// at every durable step played (the step throws), then settled as the next opening would: the result is always the
/// file without the range, plus whatever another program appended after the crash.</summary>
public sealed class MailboxCutTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bridge-cut-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private sealed class Crash : Exception;

    private static byte[] Content(int length, char fill) => Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, length).Select(i => (char)(fill + (i % 7)))));

    private (string Path, AppendJournal Journal) Mailbox(byte[] content)
    {
        var path = Path.Combine(_dir, "alice");
        File.WriteAllBytes(path, content);
        var journal = Path.Combine(_dir, "journal");
        Directory.CreateDirectory(journal);
        return (path, new AppendJournal(journal));
    }

    private static int Open(string path) => Libc.Open(path, Libc.O_WRONLY | Libc.O_APPEND | Libc.O_CLOEXEC, 0);

    [Theory]
    [InlineData(0, 100, 5000)] // a prefix (collection), shorter than the tail: staged stretches
    [InlineData(0, 4000, 300)] // a prefix longer than the tail: copied straight
    [InlineData(700, 730, 2000)] // a small record in the middle (probe, crash recovery)
    [InlineData(500, 3000, 2500)]
    public void A_range_is_removed_in_place_and_a_crash_at_any_step_is_settled_without_losing_a_byte(int start, int end, int tail)
    {
        var original = Content(end + tail, 'a');
        var expected = original[..start].Concat(original[end..]).ToArray();
        for (var crashAt = 0; ; crashAt++)
        {
            foreach (var foreignAfterCrash in new[] { false, true })
            {
                var (path, journal) = Mailbox(original);
                Assert.Equal(0, Libc.Lstat(path, out var before));
                var fd = Open(path);
                var steps = 0;
                var crashed = false;
                try
                {
                    var error = MailboxCut.Remove(fd, path, "alice", start, end, journal, stretch: 256, step: _ =>
                    {
                        if (steps++ == crashAt)
                        {
                            throw new Crash();
                        }
                    });
                    Assert.Null(error);
                }
                catch (Crash)
                {
                    crashed = true;
                }
                var foreign = "From other@example.org  Tue Dec  1 10:00:00 2026\nSubject: after the crash\n\nhi\n\n"u8.ToArray();
                if (crashed && foreignAfterCrash)
                {
                    File.AppendAllText(path, Encoding.ASCII.GetString(foreign)); // Dovecot broke the dead process's dotlock
                }
                var note = crashed ? MailboxCut.Settle(fd, path, "alice", journal) : null;
                Libc.Close(fd);

                Assert.False(note?.Critical ?? false, note?.Message);
                Assert.Equal(crashed && foreignAfterCrash ? [.. expected, .. foreign] : expected, File.ReadAllBytes(path));
                Assert.Equal(0, Libc.Lstat(path, out var after));
                Assert.True(after.SameFileAs(before), "the mailbox keeps its inode");
                Assert.Empty(Directory.GetFiles(Path.Combine(_dir, "journal")));
                if (!crashed)
                {
                    return; // every step has had its crash
                }
            }
        }
    }

    [Fact]
    public void A_cut_that_finds_the_mailbox_changed_by_someone_else_keeps_everything_and_says_so()
    {
        var original = Content(5000, 'a');
        var (path, journal) = Mailbox(original);
        var fd = Open(path);
        Assert.Throws<Crash>(() => MailboxCut.Remove(fd, path, "alice", 0, 100, journal, stretch: 256, step: s => { if (s == "copied" || s == "half-written") { throw new Crash(); } }));
        var scribbled = File.ReadAllBytes(path);
        scribbled[4000] = (byte)'#'; // another program changed the tail meanwhile
        File.WriteAllBytes(path, scribbled);

        var note = MailboxCut.Settle(fd, path, "alice", journal);
        Libc.Close(fd);

        Assert.True(note?.Critical, note?.Message);
        Assert.Equal(scribbled, File.ReadAllBytes(path));
        Assert.Contains(Directory.GetFiles(Path.Combine(_dir, "journal", "kept")), f => f.EndsWith(".cut", StringComparison.Ordinal));
    }

    [Fact]
    public void A_range_at_the_end_is_one_truncation_and_an_empty_range_changes_nothing()
    {
        var original = Content(1000, 'a');
        var (path, journal) = Mailbox(original);
        var fd = Open(path);
        Assert.Null(MailboxCut.Remove(fd, path, "alice", 10, 10, journal));
        Assert.Equal(original, File.ReadAllBytes(path));
        Assert.Null(MailboxCut.Remove(fd, path, "alice", 600, 5000, journal));
        Libc.Close(fd);
        Assert.Equal(original[..600], File.ReadAllBytes(path));
    }
}
