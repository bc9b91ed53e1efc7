using Bridge.Tests.Support;

namespace Bridge.SecurityTests;

/// <summary>The journal is what crash recovery acts on with Bridge's rights (it cuts bytes out of mailboxes): a journal
/// directory another user made first (a path under /tmp, after a reboot) would let that user forge entries that wipe a
/// victim's mailbox or make Bridge write through a link. Bridge refuses to run with such a directory, and `check` says
/// why.</summary>
public class JournalAttacks
{
    [Theory]
    [InlineData("owned by the intruder")]
    [InlineData("writable by everyone")]
    public async Task A_journal_directory_someone_else_could_write_stops_the_start_and_the_verbs(string how)
    {
        var intruder = await Intruder.EnsureAsync();
        using var parent = new TempDir("bridge-tmp", TempDir.Mode("1777"));
        var journal = parent["journal"];
        Assert.Equal(0, (how == "owned by the intruder"
            ? await intruder.ShAsync($"mkdir -m 700 {Proc.Quote(journal)}")
            : await Proc.RunAsync("sh", ["-c", $"mkdir -m 777 {Proc.Quote(journal)}"])).ExitCode);
        using var work = new TempDir("bridge-daemon", TempDir.Mode("755"));
        using var spool = new TempDir("bridge-spool", TempDir.Mode("1777"));
        await File.WriteAllTextAsync(work["appsettings.json"], "{}");
        string[] settings = [$"--Bridge:Listen:Port={FreePort.Next()}", $"--Bridge:Spool:Directory={spool.Path}", $"--Bridge:Spool:JournalDirectory={journal}"];

        var start = await BridgeProcess.RunToExitAsync(work, settings);
        Assert.Equal(69, start.ExitCode);
        Assert.Contains($"Bridge:Spool:JournalDirectory '{journal}' is owned by uid", start.Output, StringComparison.Ordinal);
        Assert.Contains("another user could forge what crash recovery acts on", start.Output, StringComparison.Ordinal);

        var drain = await BridgeProcess.RunToExitAsync(work, ["drain", "--Bridge:Legacy:Host=127.0.0.1", .. settings]);
        Assert.Equal(69, drain.ExitCode);

        var check = await BridgeProcess.RunToExitAsync(work, ["check", .. settings]);
        Assert.Contains($"FAIL journal {journal}", check.Stdout, StringComparison.Ordinal);
    }
}
