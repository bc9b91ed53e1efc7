using Bridge.Common;
using Bridge.Delivery;

namespace Bridge.UnitTests.Delivery;

/// <summary>Pure logic: the one rule that composes per-recipient outcomes into the transaction's single reply.</summary>
public class DeliveryResultTests
{
    private static readonly DeliveryStatus Ok = DeliveryStatus.Delivered("Q1");
    private static readonly DeliveryStatus Busy = DeliveryStatus.LockBusy("bob");
    private static readonly DeliveryStatus Full = DeliveryStatus.MailboxFull("carol");
    private static readonly DeliveryStatus Unknown = new(550, "5.1.1", "no such user");

    private static RecipientOutcome Outcome(string name, DeliveryStatus status) =>
        new(new RoutedRecipient($"{name}@example.org", new LocalUser(name, 1000, 1000, null), $"{name}@example.org"), status, "spool:/var/mail", 1);

    private static DeliveryStatus Compose(bool notificationSent, params DeliveryStatus[] statuses) =>
        DeliveryResult.Compose("Q1", [.. statuses.Select((s, i) => Outcome($"user{i}", s))], notificationSent).Status;

    [Fact]
    public void All_delivered_is_250_with_the_queue_id() =>
        Assert.Equal("250 2.0.0 Ok: queued as Q1", Compose(false, Ok, Ok).ToString());

    [Fact]
    public void Any_temporary_failure_is_that_4xx_even_next_to_delivered_and_permanent_ones()
    {
        Assert.Equal(Busy, Compose(false, Ok, Busy, Full));
        Assert.Equal(Busy, Compose(true, Full, Busy));
    }

    [Fact]
    public void Only_permanent_failures_is_the_first_5xx_as_it_is() =>
        Assert.Equal(Full, Compose(false, Full, Unknown));

    [Fact]
    public void Permanent_failures_beside_delivered_copies_are_250_only_once_the_sender_has_a_notification()
    {
        Assert.Equal(Ok, Compose(true, Ok, Full));
        var deferred = Compose(false, Ok, Full);
        Assert.Equal((451, "4.5.0"), (deferred.Code, deferred.Enhanced));
        Assert.Contains("<user1@example.org> failed permanently (552 5.2.2 Mailbox carol is full)", deferred.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_notification_is_needed_exactly_when_some_delivered_some_failed_for_good_and_none_is_pending()
    {
        Assert.True(DeliveryResult.NeedsNotification([Outcome("a", Ok), Outcome("b", Full)]));
        Assert.False(DeliveryResult.NeedsNotification([Outcome("a", Ok), Outcome("b", Full), Outcome("c", Busy)]));
        Assert.False(DeliveryResult.NeedsNotification([Outcome("a", Full), Outcome("b", Unknown)]));
        Assert.False(DeliveryResult.NeedsNotification([Outcome("a", Ok)]));
    }

    [Fact]
    public void A_code_that_is_neither_success_nor_permanent_counts_as_temporary()
    {
        var odd = new DeliveryStatus(354, "2.0.0", "go on");
        Assert.True(odd.IsTransient);
        Assert.Equal(odd, Compose(false, Ok, odd));
    }
}
