using Bridge.Tests.Support;

namespace Bridge.SecurityTests;

/// <summary>Legacy mode, from a local user who has mail in the store: the store's answer for that user's own mail is
/// theirs to spoil (a home or Maildir they make unreadable is Dovecot's 4xx for them), and it must stay theirs. Found by
/// attacking #25's one relay path: the circuit breaker counted a store's 4xx for one recipient as a failed message, so
/// a few messages to a user who had made their own mail undeliverable opened it, and every user's mail was then
/// answered 451 4.4.1 for Bridge:Retry:BreakDuration, again and again.</summary>
public class StoreAttacks
{
    [Fact]
    public async Task A_user_who_makes_the_store_defer_their_own_mail_cannot_open_the_breaker_for_everyone_else()
    {
        var attacker = await TestAccounts.EnsureAsync(TestAccounts.Alice);
        await using var store = await DovecotServer.StartStoreAsync(0, TestAccounts.Alice, TestAccounts.Bob);
        await using var daemon = await Daemon.StartAsync(RunAs.Root, "Bridge:Mode=Legacy", "Bridge:Legacy:Host=127.0.0.1",
            $"Bridge:Legacy:Port={store.LmtpPort}", "Bridge:Retry:MaxAttempts=1", "Bridge:Retry:BreakAfterFailures=2",
            "Bridge:Retry:BreakDuration=00:10:00");

        // The attacker, with nothing but her own rights: her home in the store, closed even to herself.
        var close = await Proc.RunAsync("setpriv", [$"--reuid={attacker.Uid}", $"--regid={attacker.Gid}", "--clear-groups", "--",
            "chmod", "000", store.HomeOf(TestAccounts.Alice)]);
        Assert.True(close.ExitCode == 0, close.Output);
        for (var i = 0; i < 4; i++)
        {
            var spoiled = await Swaks.SendAsync(daemon.Port, $"{TestAccounts.Alice}@{Daemon.Domain}");
            Assert.StartsWith("4", spoiled.FinalReply, StringComparison.Ordinal); // the store defers her own mail: her business
            Assert.DoesNotContain("circuit breaker", spoiled.FinalReply, StringComparison.Ordinal);
        }

        var other = await Swaks.SendAsync(daemon.Port, $"{TestAccounts.Bob}@{Daemon.Domain}");
        Assert.True(other.FinalReply.StartsWith("250 ", StringComparison.Ordinal), other.Transcript);
        Assert.Single(await store.FetchInboxAsync(TestAccounts.Bob));
        Assert.DoesNotContain("circuit breaker is now Open", daemon.Log, StringComparison.Ordinal);
    }
}
