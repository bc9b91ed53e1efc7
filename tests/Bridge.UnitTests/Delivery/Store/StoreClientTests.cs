using System.Buffers;
using System.Net.Sockets;
using System.Text;
using Bridge.Common;
using Bridge.Delivery.Smtp;
using Bridge.Delivery.Store;
using Bridge.UnitTests.Delivery.Smtp;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bridge.UnitTests.Delivery.Store;

/// <summary>StoreClient, the one relay path, against stores scripted in-process (ScriptedStore; no socket): what is
/// retried for a delivery and what a collection tries once, the outcome-unknown rule, one breaker for both, and each
/// store address sent once.</summary>
public sealed class StoreClientTests : IAsyncDisposable
{
    private static readonly SmtpEndpoint Endpoint = new("store.example", 24, StoreProtocol.Lmtp, StoreTls.None, null, null, null, "bridge.example", 4, Chunking: false);

    private readonly List<Task> _sessions = [];
    private int _opened;
    private StoreConnectionPool? _pool;

    public async ValueTask DisposeAsync()
    {
        if (_pool is not null)
        {
            await _pool.DisposeAsync();
        }
        await Task.WhenAll(_sessions).WaitAsync(ScriptedStore.Patience);
    }

    /// <summary>A client whose every new connection is a scripted store answering RCPT with <paramref name="rcpt"/> and the
    /// final dot with <paramref name="dot"/> (null: the store hangs up without a word); <paramref name="refuse"/>: no
    /// connection can be made at all.</summary>
    private StoreClient Client(Func<string> rcpt, Func<string?> dot, int maxAttempts = 3, int breakAfter = 50, bool refuse = false,
        TimeSpan? dotDelay = null, TimeSpan? attemptTimeout = null, int maxConnections = 4)
    {
        _pool = new StoreConnectionPool((endpoint, cancellationToken) =>
        {
            Interlocked.Increment(ref _opened);
            if (refuse)
            {
                throw new SocketException((int)SocketError.ConnectionRefused);
            }
            var store = new ScriptedStore();
            lock (_sessions)
            {
                _sessions.Add(Task.Run(() => PlayAsync(store, rcpt, dot, dotDelay ?? TimeSpan.Zero), CancellationToken.None));
            }
            return SmtpConnection.OpenAsync(store, endpoint, cancellationToken);
        });
        var retry = new StoreRetry(maxAttempts, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(5), attemptTimeout ?? TimeSpan.FromSeconds(5),
            TimeSpan.FromSeconds(20), breakAfter, TimeSpan.FromMinutes(1));
        return new StoreClient(() => new StoreSettings(Endpoint with { MaxConnections = maxConnections }, retry), _pool, null, NullLogger.Instance);
    }

    /// <summary>An LMTP store without PIPELINING: one reply per command, until QUIT or a hang-up after the dot.</summary>
    private static async Task PlayAsync(ScriptedStore store, Func<string> rcpt, Func<string?> dot, TimeSpan dotDelay)
    {
        await store.GreetAsync();
        var accepted = 0;
        while (true)
        {
            var line = await store.LineAsync();
            switch (line.Split(' ')[0])
            {
                case "MAIL":
                    accepted = 0;
                    store.Reply("250 2.1.0 ok");
                    break;
                case "RCPT":
                    var reply = rcpt();
                    accepted += reply.StartsWith('2') ? 1 : 0;
                    store.Reply(reply);
                    break;
                case "DATA":
                    store.Reply("354 go ahead");
                    await store.MessageAsync();
                    await Task.Delay(dotDelay);
                    if (dot() is not { } answer)
                    {
                        store.Cut();
                        return;
                    }
                    store.Reply(Enumerable.Repeat(answer, accepted).ToArray()); // LMTP: one reply per accepted recipient
                    break;
                case "RSET":
                    store.Reply("250 2.0.0 ok");
                    break;
                case "QUIT":
                    store.Reply("221 2.0.0 bye");
                    store.Cut();
                    return;
                default:
                    store.Reply("500 5.5.1 unknown");
                    break;
            }
        }
    }

    private static StoreRelay Relay(params string[] recipients) => new("Q1", "sender@example.org",
        recipients.Select(r => new StoreRecipient(r, null)).ToList(), new Dictionary<string, string>(), default,
        new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("Subject: hi\r\n\r\nbody")));

    [Fact]
    public async Task A_store_4xx_is_retried_for_a_delivery_and_tried_once_for_a_collection()
    {
        var client = Client(() => "451 4.3.0 try again", () => "250 2.0.0 ok", maxAttempts: 3);

        var delivery = await client.RelayAsync(Relay("a@x"), StoreRetries.AsConfigured, CancellationToken.None);
        Assert.Equal(3, delivery.Attempts);
        Assert.Equal((451, StoreAnswer.Replied), (delivery.Replies[0].Status.Code, delivery.Replies[0].Answer));

        var collection = await client.RelayAsync(Relay("a@x"), StoreRetries.Once, CancellationToken.None);
        Assert.Equal(1, collection.Attempts);
        Assert.Equal((451, StoreAnswer.Replied), (collection.Replies[0].Status.Code, collection.Replies[0].Answer));
    }

    [Fact]
    public async Task A_full_mailbox_and_a_5xx_are_never_retried()
    {
        var replies = new Queue<string>(["452 4.2.2 mailbox full", "550 5.1.1 no such user"]);
        var client = Client(() => replies.Dequeue(), () => "250 2.0.0 ok");

        var result = await client.RelayAsync(Relay("full@x", "gone@x"), StoreRetries.AsConfigured, CancellationToken.None);
        Assert.Equal(1, result.Attempts);
        Assert.Equal(["452 4.2.2", "550 5.1.1"], result.Replies.Select(r => $"{r.Status.Code} {r.Status.Enhanced}"));
    }

    [Fact]
    public async Task A_store_that_cannot_be_reached_is_unavailable_with_the_reason_after_the_policys_attempts()
    {
        var client = Client(() => "250 2.1.5 ok", () => "250 2.0.0 ok", maxAttempts: 3, refuse: true);

        var delivery = await client.RelayAsync(Relay("a@x"), StoreRetries.AsConfigured, CancellationToken.None);
        Assert.Equal((3, 3), (delivery.Attempts, _opened));
        Assert.Equal((451, "4.4.1", StoreAnswer.Unavailable), (delivery.Replies[0].Status.Code, delivery.Replies[0].Status.Enhanced, delivery.Replies[0].Answer));
        Assert.Contains("unavailable after 3 attempt(s)", delivery.Replies[0].Status.Text, StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(delivery.Problem));

        var collection = await client.RelayAsync(Relay("a@x"), StoreRetries.Once, CancellationToken.None);
        Assert.Equal((1, 4), (collection.Attempts, _opened));
        Assert.Equal(StoreAnswer.Unavailable, collection.Replies[0].Answer);
    }

    [Fact]
    public async Task A_message_sent_and_not_acknowledged_is_never_sent_again()
    {
        var client = Client(() => "250 2.1.5 ok", () => null);

        var result = await client.RelayAsync(Relay("a@x"), StoreRetries.AsConfigured, CancellationToken.None);
        Assert.Equal((1, 1), (result.Attempts, _opened));
        Assert.Equal((451, "4.4.1", StoreAnswer.OutcomeUnknown), (result.Replies[0].Status.Code, result.Replies[0].Status.Enhanced, result.Replies[0].Answer));
        Assert.Contains("outcome unknown", result.Replies[0].Status.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Collections_and_deliveries_share_one_breaker()
    {
        var client = Client(() => "250 2.1.5 ok", () => "250 2.0.0 ok", maxAttempts: 1, breakAfter: 2, refuse: true);

        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(StoreAnswer.Unavailable, (await client.RelayAsync(Relay("a@x"), StoreRetries.Once, CancellationToken.None)).Replies[0].Answer);
        }
        var delivery = await client.RelayAsync(Relay("a@x"), StoreRetries.AsConfigured, CancellationToken.None);
        Assert.Equal(2, _opened); // the breaker answered: no connection was tried
        Assert.Contains("circuit breaker is open", delivery.Replies[0].Status.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Each_store_address_is_sent_once_and_its_reply_reaches_every_recipient_with_it()
    {
        var rcpts = 0;
        var client = Client(() => { Interlocked.Increment(ref rcpts); return "250 2.1.5 ok"; }, () => "250 2.0.0 delivered");

        var result = await client.RelayAsync(Relay("a@x", "A@X", "b@x"), StoreRetries.AsConfigured, CancellationToken.None);
        Assert.Equal(2, rcpts);
        Assert.All(result.Replies, r => Assert.Equal(("250 2.0.0 delivered", StoreAnswer.Replied), (r.Status.ToString(), r.Answer)));
    }

    [Fact]
    public async Task A_collections_store_4xx_is_about_one_users_mail_and_never_opens_the_breaker()
    {
        var client = Client(() => "451 4.3.0 try again", () => "250 2.0.0 ok", maxAttempts: 1, breakAfter: 2);

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(StoreAnswer.Replied, (await client.RelayAsync(Relay("a@x"), StoreRetries.Once, CancellationToken.None)).Replies[0].Answer);
        }
        var delivery = await client.RelayAsync(Relay("a@x"), StoreRetries.AsConfigured, CancellationToken.None);
        Assert.Equal(StoreAnswer.Replied, delivery.Replies[0].Answer); // the store was asked: the breaker stayed closed
    }

    [Theory]
    [InlineData(StoreRetries.AsConfigured)]
    [InlineData(StoreRetries.Once)]
    public async Task A_connection_that_broke_while_the_message_was_written_gives_its_slot_back_and_is_a_store_failure(StoreRetries retries)
    {
        // The store dies in the middle of the message (a restart): the write fails with bytes still in the connection's
        // buffer. That is the store not reached (no exception escapes), and the pool's only slot is free again: a leaked
        // slot made every later relay wait for one, and a collection waits while it holds the user's mailbox lock.
        var opened = 0;
        _pool = new StoreConnectionPool((endpoint, cancellationToken) =>
        {
            var store = new ScriptedStore();
            if (Interlocked.Increment(ref opened) == 1)
            {
                store.FailWritesAfterBytes = 2_000;
                _ = Task.Run(() => PlayAsync(store, () => "250 2.1.5 ok", () => "250 2.0.0 ok", TimeSpan.Zero), CancellationToken.None)
                    .ContinueWith(t => t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            }
            else
            {
                lock (_sessions)
                {
                    _sessions.Add(Task.Run(() => PlayAsync(store, () => "250 2.1.5 ok", () => "250 2.0.0 ok", TimeSpan.Zero), CancellationToken.None));
                }
            }
            return SmtpConnection.OpenAsync(store, endpoint, cancellationToken);
        });
        var retry = new StoreRetry(1, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(5), TimeSpan.FromSeconds(5),
            TimeSpan.FromSeconds(20), 50, TimeSpan.FromMinutes(1));
        var client = new StoreClient(() => new StoreSettings(Endpoint with { MaxConnections = 1 }, retry), _pool, null, NullLogger.Instance);
        // Lines that begin with a dot: dot-stuffing writes them piece by piece, so the connection's buffer holds bytes
        // when the store goes away.
        var large = Relay("a@x") with
        {
            Message = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("Subject: large\r\n\r\n" + string.Concat(Enumerable.Repeat(".a line that begins with a dot\r\n", 8_000)))),
        };

        var broken = await client.RelayAsync(large, retries, CancellationToken.None);
        Assert.Equal(StoreAnswer.Unavailable, broken.Replies[0].Answer);
        Assert.Contains("Broken pipe", broken.Replies[0].Status.Text, StringComparison.Ordinal);

        var next = await client.RelayAsync(Relay("a@x"), retries, CancellationToken.None).WaitAsync(ScriptedStore.Patience);
        Assert.Equal(("250 2.0.0 ok", 2), (next.Replies[0].Status.ToString(), opened));
    }

    [Fact]
    public async Task A_collection_waits_for_a_free_connection_at_most_the_attempt_timeout()
    {
        // Every connection of the pool is busy with a store that takes its time: a collection (ten minutes of patience
        // for the transaction, and its user's mailbox locked meanwhile) gives up waiting for one and ends as "store
        // unavailable", so the mailbox is unlocked again.
        // The limit is 1 s, not less: the busy relay's own connection (the scripted store greets from a pool thread) must
        // be made within it too, also on a loaded CI machine.
        var client = Client(() => "250 2.1.5 ok", () => "250 2.0.0 ok", maxAttempts: 1, dotDelay: TimeSpan.FromSeconds(6),
            attemptTimeout: TimeSpan.FromSeconds(1), maxConnections: 1);
        var busy = client.RelayAsync(Relay("a@x"), StoreRetries.Once, CancellationToken.None); // holds the only connection

        var waited = System.Diagnostics.Stopwatch.StartNew();
        var collection = await client.RelayAsync(Relay("b@x"), StoreRetries.Once, CancellationToken.None).WaitAsync(ScriptedStore.Patience);
        Assert.Equal(StoreAnswer.Unavailable, collection.Replies[0].Answer);
        Assert.Contains("no connection within 1 s", collection.Replies[0].Status.Text, StringComparison.Ordinal);
        Assert.True(waited.Elapsed < TimeSpan.FromSeconds(3), $"waited {waited.Elapsed}"); // well before the busy one's 6 s
        Assert.Equal(StoreAnswer.Replied, (await busy).Replies[0].Answer); // the slow one still got its answer
    }

    [Fact]
    public async Task A_collection_may_be_the_breakers_trial_call_but_then_with_a_deliverys_time_limits()
    {
        // After BreakDuration the next relay tries the store on the breaker's behalf (half-open) and everyone else is
        // refused until it ends. On a quiet system that relay may be a collection (no delivery comes): it must be allowed
        // to close the breaker, but must not keep everyone waiting with a collection's ten minutes of patience.
        var refuse = true;
        var slow = TimeSpan.Zero;
        _pool = new StoreConnectionPool((endpoint, cancellationToken) =>
        {
            Interlocked.Increment(ref _opened);
            if (Volatile.Read(ref refuse))
            {
                throw new SocketException((int)SocketError.ConnectionRefused);
            }
            var store = new ScriptedStore();
            lock (_sessions)
            {
                _sessions.Add(Task.Run(() => PlayAsync(store, () => "250 2.1.5 ok", () => "250 2.0.0 ok", slow), CancellationToken.None));
            }
            return SmtpConnection.OpenAsync(store, endpoint, cancellationToken);
        });
        // Attempt timeout 1 s (the scripted store greets from a pool thread: a loaded CI machine must still connect in time).
        var retry = new StoreRetry(1, TimeSpan.FromMilliseconds(1), TimeSpan.FromMilliseconds(5), TimeSpan.FromSeconds(1),
            TimeSpan.FromSeconds(20), 2, TimeSpan.FromMilliseconds(500)); // Polly's shortest BreakDuration
        var client = new StoreClient(() => new StoreSettings(Endpoint, retry), _pool, null, NullLogger.Instance);
        async Task OpenBreakerAsync()
        {
            Volatile.Write(ref refuse, true);
            for (var i = 0; i < 2; i++)
            {
                await client.RelayAsync(Relay("a@x"), StoreRetries.AsConfigured, CancellationToken.None);
            }
            Volatile.Write(ref refuse, false);
            await Task.Delay(700); // past BreakDuration: the next relay is the trial
        }

        // A store that answers slowly: the collection that is the trial stops at the attempt timeout (1 s).
        await OpenBreakerAsync();
        slow = TimeSpan.FromSeconds(5);
        var waited = System.Diagnostics.Stopwatch.StartNew();
        var trial = await client.RelayAsync(Relay("a@x"), StoreRetries.Once, CancellationToken.None);
        Assert.True(waited.Elapsed < TimeSpan.FromSeconds(3), $"the trial took {waited.Elapsed}"); // well before the store's 5 s
        Assert.Equal(StoreAnswer.OutcomeUnknown, trial.Replies[0].Answer);

        // A store that answers: the collection's trial closes the breaker, and the next collection goes through.
        await OpenBreakerAsync();
        slow = TimeSpan.Zero;
        var closing = await client.RelayAsync(Relay("a@x"), StoreRetries.Once, CancellationToken.None);
        Assert.Equal("250 2.0.0 ok", closing.Replies[0].Status.ToString());
        var after = await client.RelayAsync(Relay("a@x"), StoreRetries.Once, CancellationToken.None);
        Assert.Equal("250 2.0.0 ok", after.Replies[0].Status.ToString());
    }

    [Fact]
    public async Task A_deliverys_store_4xx_is_about_one_users_mail_and_never_opens_the_breaker()
    {
        // A local user can make the store defer their own mail (a Maildir they made unreadable: Dovecot's 451 4.2.0);
        // that must not stop everyone's Legacy delivery.
        var client = Client(() => "451 4.2.0 temporary failure", () => "250 2.0.0 ok", maxAttempts: 2, breakAfter: 2);

        for (var i = 0; i < 4; i++)
        {
            var deferred = await client.RelayAsync(Relay("a@x"), StoreRetries.AsConfigured, CancellationToken.None);
            // The store's own answer after both attempts, each of which reached it: the breaker stayed closed.
            Assert.Equal((StoreAnswer.Replied, "451 4.2.0 temporary failure", 2), (deferred.Replies[0].Answer, deferred.Replies[0].Status.ToString(), deferred.Attempts));
        }
    }

    [Fact]
    public async Task A_slow_store_times_a_delivery_out_but_a_collection_waits_for_its_answer()
    {
        var client = Client(() => "250 2.1.5 ok", () => "250 2.0.0 ok", maxAttempts: 1, dotDelay: TimeSpan.FromMilliseconds(600),
            attemptTimeout: TimeSpan.FromMilliseconds(200));

        var delivery = await client.RelayAsync(Relay("a@x"), StoreRetries.AsConfigured, CancellationToken.None);
        Assert.NotEqual(StoreAnswer.Replied, delivery.Replies[0].Answer); // sent, then no answer in time

        // A collection waits as an SMTP client does (10 minutes): it must not see the same message again and again as
        // "outcome unknown".
        var collection = await client.RelayAsync(Relay("a@x"), StoreRetries.Once, CancellationToken.None);
        Assert.Equal(("250 2.0.0 ok", StoreAnswer.Replied), (collection.Replies[0].Status.ToString(), collection.Replies[0].Answer));
    }
}
