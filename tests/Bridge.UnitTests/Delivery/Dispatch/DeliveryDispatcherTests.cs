using System.Buffers;
using Bridge.Common;
using Bridge.Delivery;
using Bridge.Delivery.Bounces;
using Bridge.Delivery.Dispatch;

namespace Bridge.UnitTests.Delivery.Dispatch;

/// <summary>The dispatcher's choices with fake agents and a fake notification sender (pure logic, in-process): which
/// agent each recipient goes to, what a spool failure holds back, the fallback of a store that still refuses for now
/// into the spool (only when configured), and which notifications go to the sender (failure, delivery, expansion).</summary>
public sealed class DeliveryDispatcherTests
{
    private static readonly DeliveryStatus Ok = new(250, "2.0.0", "Ok");
    private static readonly DeliveryStatus Later = new(451, "4.3.0", "store unavailable");
    private static readonly DeliveryStatus Never = new(550, "5.1.1", "no such user");
    private static readonly DeliveryStatus SpoolBusy = new(451, "4.2.0", "Mailbox locked");

    /// <summary>An agent that answers each recipient by <see cref="Answer"/> and remembers what it was given.</summary>
    private sealed class FakeAgent(string relay) : IDeliveryAgent
    {
        public Func<RoutedRecipient, DeliveryStatus> Answer { get; set; } = _ => Ok;

        public List<DeliveryRequest> Requests { get; } = [];

        public List<string> Given => [.. Requests.SelectMany(r => r.Recipients).Select(r => r.DeliveredTo)];

        public Task<DeliveryResult> DeliverAsync(DeliveryRequest request, CancellationToken cancellationToken)
        {
            Requests.Add(request);
            var outcomes = request.Recipients.Select(r => new RecipientOutcome(r, Answer(r), $"{relay}{r.User.ShortName}", 3)).ToList();
            return Task.FromResult(DeliveryResult.Compose(request.QueueId, outcomes));
        }
    }

    private sealed record Notice(DsnAction Action, List<RecipientOutcome> Outcomes);

    private readonly FakeAgent _spool = new("spool:/var/mail/");
    private readonly FakeAgent _store = new("lmtp:[store]:24/");
    private readonly List<Notice> _notices = [];
    private bool _notifyWorks = true;

    private DeliveryDispatcher Dispatcher() => new(_spool, _store, (request, outcomes, arrival, cancellationToken, action) =>
    {
        _notices.Add(new Notice(action, [.. outcomes]));
        return Task.FromResult(_notifyWorks);
    });

    private static RoutedRecipient User(string name, BridgeMode? mode = null, string? notify = null) =>
        new($"{name}@example.org", new LocalUser(name, 1000, 1000, mode), $"{name}@example.org") { Notify = notify };

    private static RoutedRecipient Member(string alias, string name, BridgeMode? mode = null, bool expansionNotice = false) =>
        new($"{alias}@example.org", new LocalUser(name, 1000, 1000, mode), $"{name}@example.org") { Alias = alias, ExpansionNotice = expansionNotice };

    private static DeliveryRequest Request(bool perRecipient, params RoutedRecipient[] recipients) =>
        new("Q1", "sender@example.org", recipients, ReadOnlyMemory<byte>.Empty, ReadOnlySequence<byte>.Empty, new MessageHeaderSummary(0, []),
            new Dictionary<string, string>(), perRecipient);

    private Task<DeliveryResult> Deliver(BridgeMode mode, bool fallback, params RoutedRecipient[] recipients) =>
        Dispatcher().DeliverAsync(Request(false, recipients), mode, fallback, CancellationToken.None);

    private Task<DeliveryResult> DeliverPerRecipient(BridgeMode mode, bool fallback, params RoutedRecipient[] recipients) =>
        Dispatcher().DeliverAsync(Request(true, recipients), mode, fallback, CancellationToken.None);

    private static DeliveryStatus StatusOf(DeliveryResult result, string deliveredTo) =>
        result.Recipients.Single(o => o.Recipient.DeliveredTo == deliveredTo).Status;

    // ---- which agent ----

    [Fact]
    public async Task Each_recipient_goes_to_the_agent_of_its_own_mode_else_the_default()
    {
        var result = await Deliver(BridgeMode.Spool, false, User("ann"), User("bob", BridgeMode.Legacy), User("cat", BridgeMode.Spool));

        Assert.Equal(["ann@example.org", "cat@example.org"], _spool.Given);
        Assert.Equal(["bob@example.org"], _store.Given);
        Assert.Equal(DeliveryStatus.Delivered("Q1"), result.Status);
        Assert.Equal(3, result.Recipients.Count);

        _spool.Requests.Clear();
        _store.Requests.Clear();
        await Deliver(BridgeMode.Legacy, false, User("ann"), User("bob", BridgeMode.Spool));
        Assert.Equal(["bob@example.org"], _spool.Given);
        Assert.Equal(["ann@example.org"], _store.Given);
    }

    [Fact]
    public async Task A_spool_failure_for_now_defers_the_message_before_anything_reaches_the_store()
    {
        _spool.Answer = r => r.User.ShortName == "ann" ? SpoolBusy : Ok;

        var result = await Deliver(BridgeMode.Spool, true, User("ann"), User("cat"), User("bob", BridgeMode.Legacy));

        Assert.Empty(_store.Requests);
        Assert.Equal(SpoolBusy, result.Status);
        Assert.Equal(SpoolBusy, StatusOf(result, "bob@example.org"));
        Assert.Equal("not attempted", result.Recipients.Single(o => o.Recipient.DeliveredTo == "bob@example.org").Relay);
        Assert.Empty(_notices);
    }

    [Fact]
    public async Task Per_recipient_a_spool_failure_holds_back_only_the_store_members_of_the_same_rcpt()
    {
        _spool.Answer = r => r.User.ShortName == "ann" ? SpoolBusy : Ok;

        var result = await DeliverPerRecipient(BridgeMode.Spool, false,
            Member("team", "ann"), Member("team", "bob", BridgeMode.Legacy), User("dan", BridgeMode.Legacy));

        Assert.Equal(["dan@example.org"], _store.Given);
        Assert.Equal(SpoolBusy, StatusOf(result, "ann@example.org"));
        Assert.Equal(SpoolBusy, StatusOf(result, "bob@example.org"));
        Assert.Equal(Ok, StatusOf(result, "dan@example.org"));
    }

    // ---- fallback to the spool ----

    [Fact]
    public async Task With_fallback_a_store_that_refuses_for_now_has_those_recipients_written_to_the_spool()
    {
        _store.Answer = r => r.User.ShortName == "ann" ? Later : Ok;

        var result = await Deliver(BridgeMode.Legacy, true, User("ann"), User("bob"));

        Assert.Equal(["ann@example.org"], _spool.Given);
        var ann = result.Recipients.Single(o => o.Recipient.DeliveredTo == "ann@example.org");
        Assert.Equal(Ok, ann.Status);
        Assert.Equal("lmtp:[store]:24/ann, fallback spool:/var/mail/ann", ann.Relay);
        Assert.Equal(3, ann.Attempts); // the store's attempts
        Assert.Equal(DeliveryStatus.Delivered("Q1"), result.Status);
    }

    [Fact]
    public async Task Without_fallback_a_store_that_refuses_for_now_is_the_answer()
    {
        _store.Answer = _ => Later;

        var result = await Deliver(BridgeMode.Legacy, false, User("ann"));

        Assert.Empty(_spool.Requests);
        Assert.Equal(Later, result.Status);
    }

    [Fact]
    public async Task A_permanent_refusal_of_the_store_is_not_retried_in_the_spool()
    {
        _store.Answer = r => r.User.ShortName == "ann" ? Never : Ok;

        var result = await Deliver(BridgeMode.Legacy, true, User("ann"), User("bob"));

        Assert.Empty(_spool.Requests);
        Assert.Equal(Never, StatusOf(result, "ann@example.org"));
    }

    [Fact]
    public async Task A_fallback_the_spool_cannot_take_either_leaves_its_failure()
    {
        _store.Answer = _ => Later;
        _spool.Answer = _ => SpoolBusy;

        var result = await Deliver(BridgeMode.Legacy, true, User("ann"));

        Assert.Equal(SpoolBusy, result.Status);
        Assert.Equal("lmtp:[store]:24/ann, fallback spool:/var/mail/ann", Assert.Single(result.Recipients).Relay);
    }

    [Fact]
    public async Task A_fallback_the_spool_refuses_for_good_leaves_the_stores_temporary_answer()
    {
        // The spool over its size limit (552 5.2.2) must not bounce what the store only deferred: the MTA keeps the mail
        // until the store takes it.
        var full = new DeliveryStatus(552, "5.2.2", "Mailbox full");
        _store.Answer = _ => Later;
        _spool.Answer = _ => full;

        var result = await Deliver(BridgeMode.Legacy, true, User("ann"));

        Assert.Equal(Later, result.Status);
        Assert.Equal("lmtp:[store]:24/ann, fallback refused (552 5.2.2)", Assert.Single(result.Recipients).Relay);
        Assert.Empty(_notices);
    }

    // ---- failure notifications ----

    [Fact]
    public async Task A_permanent_failure_next_to_a_delivery_gets_a_failure_notice_and_the_message_is_taken()
    {
        _spool.Answer = r => r.User.ShortName == "ann" ? Never : Ok;

        var result = await Deliver(BridgeMode.Spool, false, User("ann"), User("bob"));

        var notice = Assert.Single(_notices);
        Assert.Equal(DsnAction.Failed, notice.Action);
        Assert.Equal("ann@example.org", Assert.Single(notice.Outcomes).Recipient.DeliveredTo);
        Assert.Equal(DeliveryStatus.Delivered("Q1"), result.Status);
    }

    [Fact]
    public async Task A_failure_notice_that_cannot_be_sent_defers_the_message()
    {
        _spool.Answer = r => r.User.ShortName == "ann" ? Never : Ok;
        _notifyWorks = false;

        var result = await Deliver(BridgeMode.Spool, false, User("ann"), User("bob"));

        Assert.Single(_notices);
        Assert.Equal((451, "4.5.0"), (result.Status.Code, result.Status.Enhanced));
    }

    [Theory]
    [InlineData("NEVER")]
    [InlineData("SUCCESS")]
    [InlineData("DELAY")]
    public async Task A_recipient_whose_NOTIFY_asks_no_failure_notice_gets_none_and_the_message_is_taken(string notify)
    {
        _spool.Answer = r => r.User.ShortName == "ann" ? Never : Ok;

        var result = await Deliver(BridgeMode.Spool, false, User("ann", notify: notify), User("bob"));

        Assert.DoesNotContain(_notices, n => n.Action == DsnAction.Failed);
        Assert.Equal(DeliveryStatus.Delivered("Q1"), result.Status);
    }

    [Fact]
    public async Task Nothing_delivered_gets_no_notice_the_refusal_is_the_answer()
    {
        _spool.Answer = _ => Never;

        var result = await Deliver(BridgeMode.Spool, false, User("ann"), User("bob"));

        Assert.Empty(_notices);
        Assert.Equal(Never, result.Status);
    }

    [Fact]
    public async Task A_failure_for_now_next_to_a_permanent_one_gets_no_notice_the_message_is_deferred()
    {
        _spool.Answer = r => r.User.ShortName == "ann" ? Never : Ok;
        _store.Answer = _ => Later;

        var result = await Deliver(BridgeMode.Spool, false, User("ann"), User("bob"), User("cat", BridgeMode.Legacy));

        Assert.Empty(_notices);
        Assert.Equal(Later, result.Status);
    }

    [Fact]
    public async Task Per_recipient_no_notice_is_sent_the_client_has_each_status()
    {
        _spool.Answer = r => r.User.ShortName == "ann" ? Never : Ok;

        var result = await DeliverPerRecipient(BridgeMode.Spool, false, User("ann"), User("bob"));

        Assert.Empty(_notices);
        Assert.Equal(Never, StatusOf(result, "ann@example.org"));
        Assert.Equal(Ok, StatusOf(result, "bob@example.org"));
    }

    // ---- delivery and expansion notices ----

    [Fact]
    public async Task NOTIFY_SUCCESS_gets_a_delivery_notice_from_the_spool_only()
    {
        await Deliver(BridgeMode.Spool, false, User("ann", notify: "SUCCESS,FAILURE"), User("bob", BridgeMode.Legacy, notify: "SUCCESS"), User("cat"));

        var notice = Assert.Single(_notices);
        Assert.Equal(DsnAction.Delivered, notice.Action);
        Assert.Equal("ann@example.org", Assert.Single(notice.Outcomes).Recipient.DeliveredTo); // the store answers NOTIFY itself
    }

    [Fact]
    public async Task NOTIFY_SUCCESS_for_a_recipient_the_store_fell_back_to_the_spool_for_gets_a_delivery_notice()
    {
        _store.Answer = _ => Later;

        await Deliver(BridgeMode.Legacy, true, User("ann", notify: "SUCCESS"));

        // Bridge made the final delivery (into the spool), so Bridge owes the notice the sender asked for.
        var notice = Assert.Single(_notices);
        Assert.Equal(DsnAction.Delivered, notice.Action);
        Assert.Equal("ann@example.org", Assert.Single(notice.Outcomes).Recipient.DeliveredTo);
    }

    [Fact]
    public async Task An_alias_that_asked_NOTIFY_SUCCESS_gets_one_expansion_notice_for_itself()
    {
        _spool.Answer = r => r.User.ShortName == "bob" ? Never : Ok;

        await Deliver(BridgeMode.Spool, false, Member("team", "ann", expansionNotice: true), Member("team", "bob", expansionNotice: true), User("cat"));

        var expanded = Assert.Single(_notices, n => n.Action == DsnAction.Expanded);
        var outcome = Assert.Single(expanded.Outcomes);
        Assert.Null(outcome.Recipient.Alias);
        Assert.Equal("team@example.org", outcome.Recipient.Address);
        Assert.Equal(new DeliveryStatus(250, "2.0.0", "expanded to 2 recipients"), outcome.Status);
        Assert.Equal("alias", outcome.Relay);
        Assert.Contains(_notices, n => n.Action == DsnAction.Failed); // bob's failure is told too
    }

    [Fact]
    public async Task No_expansion_notice_while_a_recipient_waits_or_when_no_member_was_delivered()
    {
        _store.Answer = _ => Later;
        await Deliver(BridgeMode.Spool, false, Member("team", "ann", expansionNotice: true), User("cat", BridgeMode.Legacy));
        Assert.DoesNotContain(_notices, n => n.Action == DsnAction.Expanded);

        _spool.Answer = _ => Never;
        await Deliver(BridgeMode.Spool, false, Member("team", "ann", expansionNotice: true), Member("team", "bob", expansionNotice: true));
        Assert.DoesNotContain(_notices, n => n.Action == DsnAction.Expanded);

        _spool.Answer = _ => Ok;
        await DeliverPerRecipient(BridgeMode.Spool, false, Member("team", "ann", expansionNotice: true));
        Assert.DoesNotContain(_notices, n => n.Action == DsnAction.Expanded);
    }
}
