using System.Buffers;
using System.Text;
using Bridge.Common;
using Bridge.Delivery.Smtp;

namespace Bridge.UnitTests.Delivery.Smtp;

/// <summary>SmtpConnection against a store scripted in-process (no socket, no peer): which commands go out together
/// (PIPELINING, CHUNKING) and which wait for a reply, which reply belongs to which recipient (split across reads,
/// multi-line, early, late, garbled, 4xx/5xx per recipient), and what a cut at each point means: before the message
/// went out a transient connection failure, after it an unknown outcome that must not be sent again.</summary>
public sealed class SmtpConnectionTests
{
    private const string Sender = "sender@example.org";
    private const string Prefix = "Received: from client.example\r\n";
    private const string Body = "Subject: hi\r\n\r\n.a line that starts with a dot\r\nlast line";

    /// <summary>What a store reads after the final dot: the prefix, the message, the CRLF SmtpServer had removed.</summary>
    private const string Delivered = Prefix + Body + "\r\n";

    private static SmtpEndpoint Endpoint(StoreProtocol protocol = StoreProtocol.Smtp, bool chunking = true) =>
        new("store.example", 25, protocol, StoreTls.None, null, null, null, "bridge.example", 4, chunking);

    private static ReadOnlySequence<byte> Message(string body = Body) => new(Encoding.ASCII.GetBytes(body));

    private static readonly Dictionary<string, string> NoParameters = [];

    /// <summary>Runs <paramref name="script"/> as the store while <paramref name="client"/> uses the connection; both must finish.</summary>
    private static async Task<T> Play<T>(SmtpEndpoint endpoint, Func<ScriptedStore, Task> script, Func<SmtpConnection, CancellationToken, Task<T>> client)
    {
        using var store = new ScriptedStore();
        var server = Task.Run(() => script(store));
        using var timeout = new CancellationTokenSource(ScriptedStore.Patience);
        try
        {
            await using var connection = await SmtpConnection.OpenAsync(store, endpoint, timeout.Token);
            return await client(connection, timeout.Token);
        }
        finally
        {
            await server;
        }
    }

    private static Task<IReadOnlyList<DeliveryStatus>> Send(SmtpConnection connection, CancellationToken cancellationToken,
        params string[] recipients) =>
        connection.SendAsync(Sender, recipients, NoParameters, Encoding.ASCII.GetBytes(Prefix), Message(), cancellationToken);

    private static async Task ExpectAsync(ScriptedStore store, params string[] lines)
    {
        foreach (var line in lines)
        {
            Assert.Equal(line, await store.LineAsync());
        }
    }

    private static readonly TimeSpan Moment = TimeSpan.FromMilliseconds(150);

    // ---- DATA, pipelined ----

    [Fact]
    public async Task With_PIPELINING_mail_every_rcpt_and_data_go_out_before_any_reply()
    {
        var (statuses, reusable, replies) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING", "8BITMIME");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>", "DATA");
            store.Reply("250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>");
            Assert.Equal(Delivered, await store.MessageAsync());
            store.Reply("250 2.0.0 Ok: queued as 4XYZ");
        }, async (c, ct) => (await Send(c, ct, "a@example.org", "b@example.org"), c.Reusable, c.RepliesInTransaction));

        Assert.All(statuses, s => Assert.Equal(new DeliveryStatus(250, "2.0.0", "Ok: queued as 4XYZ"), s));
        Assert.True(reusable);
        Assert.Equal(5, replies);
    }

    [Fact]
    public async Task The_message_is_dot_stuffed_on_the_wire()
    {
        var written = "";
        await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "DATA");
            store.Reply("250 Ok", "250 Ok", "354 go");
            await store.MessageAsync();
            written = store.Written;
            store.Reply("250 Ok");
        }, (c, ct) => Send(c, ct, "a@example.org"));

        Assert.EndsWith("DATA\r\n" + Prefix + Body.Replace("\r\n.", "\r\n..", StringComparison.Ordinal) + "\r\n.\r\n", written, StringComparison.Ordinal);
    }

    private static readonly string[] Pieces = ["2", "50 2.1.0 Ok\r", "\n550-5.1.1 first line\r\n550 5.1.1 second", " line\r\n250-2.1.5 multi\r\n", "250 2.1.5 line\r\n35", "4 go\r\n"];

    [Fact]
    public async Task Replies_split_anywhere_across_reads_and_multi_line_replies_are_counted_as_one_each()
    {
        var statuses = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>", "DATA");
            foreach (var piece in Pieces)
            {
                store.Send(piece);
                await Task.Delay(10);
            }
            Assert.Equal(Delivered, await store.MessageAsync());
            store.Send("250-2.0.0 Ok\r\n");
            store.Send("250 2.0.0 queued\r\n");
        }, (c, ct) => Send(c, ct, "a@example.org", "b@example.org"));

        Assert.Equal(new DeliveryStatus(550, "5.1.1", "first line; second line"), statuses[0]);
        Assert.Equal(new DeliveryStatus(250, "2.0.0", "Ok; queued"), statuses[1]);
    }

    [Fact]
    public async Task Replies_that_come_early_before_the_commands_are_read_still_answer_them_in_order()
    {
        var statuses = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            store.Reply("250 2.1.0 Ok", "450 4.2.1 try later", "250 2.1.5 Ok", "354 go"); // before reading a single command
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>", "DATA");
            Assert.Equal(Delivered, await store.MessageAsync());
            store.Reply("250 2.0.0 Ok");
        }, (c, ct) => Send(c, ct, "a@example.org", "b@example.org"));

        Assert.Equal([450, 250], statuses.Select(s => s.Code));
    }

    [Fact]
    public async Task Replies_that_come_late_are_waited_for()
    {
        var statuses = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "DATA");
            await Task.Delay(Moment);
            store.Reply("250 Ok");
            await Task.Delay(Moment);
            store.Reply("250 Ok", "354 go");
            Assert.Equal(Delivered, await store.MessageAsync());
            await Task.Delay(Moment);
            store.Reply("250 2.0.0 late");
        }, (c, ct) => Send(c, ct, "a@example.org"));

        Assert.Equal(new DeliveryStatus(250, "2.0.0", "late"), Assert.Single(statuses));
    }

    [Fact]
    public async Task Each_recipient_keeps_its_own_4xx_or_5xx_and_the_accepted_ones_get_the_final_reply()
    {
        var statuses = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>", "RCPT TO:<c@example.org>", "DATA");
            store.Reply("250 Ok", "452 4.2.2 over quota", "550 5.1.1 no such user", "250 Ok", "354 go");
            Assert.Equal(Delivered, await store.MessageAsync());
            store.Reply("250 2.0.0 Ok: queued");
        }, (c, ct) => Send(c, ct, "a@example.org", "b@example.org", "c@example.org"));

        Assert.Equal(new DeliveryStatus(452, "4.2.2", "over quota"), statuses[0]);
        Assert.Equal(new DeliveryStatus(550, "5.1.1", "no such user"), statuses[1]);
        Assert.Equal(new DeliveryStatus(250, "2.0.0", "Ok: queued"), statuses[2]);
    }

    [Fact]
    public async Task A_refused_MAIL_is_every_recipients_answer_and_the_pipelined_replies_are_read_then_RSET()
    {
        var (statuses, reusable) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>", "DATA");
            store.Reply("550 5.7.1 sender refused", "503 5.5.1 need MAIL", "503 5.5.1 need MAIL", "503 5.5.1 need RCPT");
            await ExpectAsync(store, "RSET");
            store.Reply("250 2.0.0 Ok");
            Assert.True(await store.QuietAsync(Moment));
        }, async (c, ct) => (await Send(c, ct, "a@example.org", "b@example.org"), c.Reusable));

        Assert.All(statuses, s => Assert.Equal(new DeliveryStatus(550, "5.7.1", "sender refused"), s));
        Assert.True(reusable, "RSET answered 250: the session is clean again");
    }

    [Fact]
    public async Task Every_rcpt_refused_and_DATA_refused_resets_without_sending_the_message()
    {
        var (statuses, reusable) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "DATA");
            store.Reply("250 Ok", "550 5.1.1 unknown", "554 5.5.1 no valid recipients");
            await ExpectAsync(store, "RSET");
            store.Reply("421 4.3.0 going away"); // a refused RSET: the session is not used again
            Assert.True(await store.QuietAsync(Moment));
        }, async (c, ct) => (await Send(c, ct, "a@example.org"), c.Reusable));

        Assert.Equal(new DeliveryStatus(550, "5.1.1", "unknown"), Assert.Single(statuses));
        Assert.False(reusable);
    }

    [Fact]
    public async Task A_store_that_opens_DATA_without_recipients_gets_no_message_and_the_session_is_dropped()
    {
        var (statuses, reusable) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "DATA");
            store.Reply("250 Ok", "550 5.1.1 unknown", "354 go ahead anyway");
            Assert.True(await store.QuietAsync(Moment), "neither the message nor RSET is sent");
        }, async (c, ct) => (await Send(c, ct, "a@example.org"), c.Reusable));

        Assert.Equal(550, Assert.Single(statuses).Code);
        Assert.False(reusable);
    }

    [Fact]
    public async Task A_refused_DATA_is_the_answer_of_the_accepted_recipients_only()
    {
        var (statuses, reusable) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>", "DATA");
            store.Reply("250 Ok", "550 5.1.1 unknown", "250 Ok", "451 4.3.0 try again");
            await ExpectAsync(store, "RSET");
            store.Reply("250 Ok");
        }, async (c, ct) => (await Send(c, ct, "a@example.org", "b@example.org"), c.Reusable));

        Assert.Equal(new DeliveryStatus(550, "5.1.1", "unknown"), statuses[0]);
        Assert.Equal(new DeliveryStatus(451, "4.3.0", "try again"), statuses[1]);
        Assert.True(reusable);
    }

    [Fact]
    public async Task DATA_answered_with_a_success_instead_of_354_is_a_protocol_error_and_the_session_is_dropped()
    {
        var (statuses, reusable) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "DATA");
            store.Reply("250 Ok", "250 Ok", "250 2.0.0 what");
            Assert.True(await store.QuietAsync(Moment));
        }, async (c, ct) => (await Send(c, ct, "a@example.org"), c.Reusable));

        Assert.Equal(new DeliveryStatus(451, "4.5.0", "Mail store protocol error: unexpected reply to DATA: 250 what"), Assert.Single(statuses));
        Assert.False(reusable);
    }

    [Fact]
    public async Task A_rcpt_answered_with_a_code_no_rcpt_reply_has_is_a_protocol_error_and_no_message_is_sent()
    {
        var (statuses, reusable) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>", "DATA");
            store.Reply("250 Ok", "354 confused", "250 2.1.5 Ok", "354 go");
            Assert.True(await store.QuietAsync(Moment), "no message after a protocol error");
        }, async (c, ct) => (await Send(c, ct, "a@example.org", "b@example.org"), c.Reusable));

        Assert.Equal(new DeliveryStatus(451, "4.5.0", "Mail store protocol error: unexpected reply to RCPT: 354 confused"), statuses[0]);
        // The other recipient was accepted at RCPT, but no message was sent: it gets the protocol error too (a 250 here
        // would read as delivered to a caller that answers per recipient, as LMTP intake does).
        Assert.Equal(statuses[0], statuses[1]);
        Assert.False(reusable);
    }

    [Fact]
    public async Task A_MAIL_answered_530_throws_as_a_configuration_problem()
    {
        var error = await Assert.ThrowsAsync<SmtpConnectionException>(() => Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "DATA");
            store.Reply("530 5.7.0 Authentication required", "530 5.7.0 Authentication required", "530 5.7.0 Authentication required");
        }, (c, ct) => Send(c, ct, "a@example.org")));
        Assert.Contains("requires authentication", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("hello there\r\n")]
    [InlineData("25\r\n")]
    [InlineData("2500 Ok\r\n")]
    [InlineData("250_Ok\r\n")]
    public async Task A_garbled_reply_before_the_message_is_a_connection_failure(string garbled)
    {
        var error = await Assert.ThrowsAsync<SmtpConnectionException>(() => Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "DATA");
            store.Send(garbled);
        }, (c, ct) => Send(c, ct, "a@example.org")));
        Assert.Contains("malformed reply", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_garbled_reply_after_the_message_leaves_the_outcome_unknown()
    {
        var error = await Assert.ThrowsAsync<StoreOutcomeUnknownException>(() => Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "DATA");
            store.Reply("250 Ok", "250 Ok", "354 go");
            await store.MessageAsync();
            store.Send("queued, thanks\r\n");
        }, (c, ct) => Send(c, ct, "a@example.org")));
        Assert.Equal([null], error.Known);
    }

    [Fact]
    public async Task A_reply_after_the_message_that_is_not_final_leaves_the_outcome_unknown()
    {
        var error = await Assert.ThrowsAsync<StoreOutcomeUnknownException>(() => Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "DATA");
            store.Reply("250 Ok", "250 Ok", "354 go");
            await store.MessageAsync();
            store.Reply("354 again?");
        }, (c, ct) => Send(c, ct, "a@example.org")));
        Assert.Contains("no final reply", error.Message, StringComparison.Ordinal);
    }

    // ---- cut at every point ----

    /// <summary>The replies of one pipelined DATA transaction for one recipient, in order: greeting and EHLO first.</summary>
    private static readonly string[] Transaction = ["220 store.example ESMTP", "250-store.example\r\n250 PIPELINING", "250 Ok", "250 Ok", "354 go", "250 2.0.0 Ok"];

    /// <summary>The store sends the first <paramref name="replies"/> replies of the transaction (then the first half of the
    /// next one when <paramref name="midReply"/>) and closes or resets the connection.</summary>
    private static async Task<Exception?> CutAfter(int replies, bool midReply, bool reset)
    {
        using var store = new ScriptedStore();
        var server = Task.Run(async () =>
        {
            for (var i = 0; i < replies; i++)
            {
                store.Reply(Transaction[i]);
            }
            if (midReply)
            {
                store.Send(Transaction[replies][..2]);
            }
            if (reset)
            {
                store.Reset();
            }
            else
            {
                store.Cut();
            }
            await Task.CompletedTask;
        });
        using var timeout = new CancellationTokenSource(ScriptedStore.Patience);
        try
        {
            await using var connection = await SmtpConnection.OpenAsync(store, Endpoint(), timeout.Token);
            await Send(connection, timeout.Token, "a@example.org");
            return null;
        }
#pragma warning disable CA1031 // the test looks at which exception it was
        catch (Exception ex)
#pragma warning restore CA1031
        {
            return ex;
        }
        finally
        {
            await server;
        }
    }

    public static TheoryData<int, bool, bool> BeforeTheMessage()
    {
        var data = new TheoryData<int, bool, bool>();
        for (var replies = 0; replies < 5; replies++)
        {
            foreach (var midReply in new[] { false, true })
            {
                foreach (var reset in new[] { false, true })
                {
                    data.Add(replies, midReply, reset);
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(BeforeTheMessage))]
    public async Task A_connection_cut_before_the_message_went_out_is_a_transient_failure(int replies, bool midReply, bool reset)
    {
        var error = await CutAfter(replies, midReply, reset);
        Assert.NotNull(error);
        Assert.IsNotType<StoreOutcomeUnknownException>(error);
        Assert.True(NetworkFailure.IsTransient(error), error.ToString());
        Assert.IsType(reset ? typeof(IOException) : typeof(SmtpConnectionException), error);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task A_connection_cut_after_the_message_went_out_leaves_the_outcome_unknown(bool midReply, bool reset)
    {
        var error = await CutAfter(5, midReply, reset);
        var unknown = Assert.IsType<StoreOutcomeUnknownException>(error);
        Assert.Equal([null], unknown.Known);
    }

    [Fact]
    public async Task The_whole_transaction_answered_is_no_failure()
    {
        Assert.Null(await CutAfter(6, midReply: false, reset: false));
    }

    // ---- DATA, stepwise ----

    [Fact]
    public async Task Without_PIPELINING_each_command_waits_for_its_reply()
    {
        var (statuses, reusable) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("8BITMIME");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>");
            Assert.True(await store.QuietAsync(Moment), "RCPT waits for MAIL's reply");
            store.Reply("250 Ok");
            await ExpectAsync(store, "RCPT TO:<a@example.org>");
            Assert.True(await store.QuietAsync(Moment), "the next RCPT waits");
            store.Reply("550 5.1.1 unknown");
            await ExpectAsync(store, "RCPT TO:<b@example.org>");
            Assert.True(await store.QuietAsync(Moment), "DATA waits");
            store.Reply("250 Ok");
            await ExpectAsync(store, "DATA");
            Assert.True(await store.QuietAsync(Moment), "the message waits for 354");
            store.Reply("354 go");
            Assert.Equal(Delivered, await store.MessageAsync());
            store.Reply("250 2.0.0 Ok");
        }, async (c, ct) => (await Send(c, ct, "a@example.org", "b@example.org"), c.Reusable));

        Assert.Equal([550, 250], statuses.Select(s => s.Code));
        Assert.True(reusable);
    }

    [Fact]
    public async Task Without_PIPELINING_a_refused_MAIL_sends_no_rcpt_and_resets()
    {
        var statuses = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync();
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>");
            store.Reply("451 4.3.0 not now");
            await ExpectAsync(store, "RSET");
            store.Reply("250 Ok");
        }, (c, ct) => Send(c, ct, "a@example.org", "b@example.org"));

        Assert.All(statuses, s => Assert.Equal(new DeliveryStatus(451, "4.3.0", "not now"), s));
    }

    [Fact]
    public async Task Without_PIPELINING_no_accepted_recipient_sends_no_DATA_and_resets()
    {
        var (statuses, reusable) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync();
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>");
            store.Reply("250 Ok");
            await ExpectAsync(store, "RCPT TO:<a@example.org>");
            store.Reply("550 5.1.1 unknown");
            await ExpectAsync(store, "RSET");
            store.Reply("250 Ok");
            Assert.True(await store.QuietAsync(Moment));
        }, async (c, ct) => (await Send(c, ct, "a@example.org"), c.Reusable));

        Assert.Equal(550, Assert.Single(statuses).Code);
        Assert.True(reusable);
    }

    [Fact]
    public async Task Without_PIPELINING_a_cut_before_354_is_transient()
    {
        await Assert.ThrowsAsync<SmtpConnectionException>(() => Play(Endpoint(), async store =>
        {
            await store.GreetAsync();
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>");
            store.Reply("250 Ok");
            await ExpectAsync(store, "RCPT TO:<a@example.org>");
            store.Reply("250 Ok");
            await ExpectAsync(store, "DATA");
            store.Cut();
        }, (c, ct) => Send(c, ct, "a@example.org")));
    }

    // ---- LMTP ----

    [Fact]
    public async Task Over_LMTP_each_accepted_recipient_gets_its_own_reply_after_the_message()
    {
        var statuses = await Play(Endpoint(StoreProtocol.Lmtp), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>", "RCPT TO:<c@example.org>", "DATA");
            store.Reply("250 Ok", "250 Ok", "550 5.1.1 unknown", "250 Ok", "354 go");
            Assert.Equal(Delivered, await store.MessageAsync());
            store.Reply("250 2.0.0 <a> saved");
            store.Reply("452 4.2.2 <c> over quota");
        }, (c, ct) => Send(c, ct, "a@example.org", "b@example.org", "c@example.org"));

        Assert.Equal(new DeliveryStatus(250, "2.0.0", "<a> saved"), statuses[0]);
        Assert.Equal(new DeliveryStatus(550, "5.1.1", "unknown"), statuses[1]);
        Assert.Equal(new DeliveryStatus(452, "4.2.2", "<c> over quota"), statuses[2]);
    }

    [Fact]
    public async Task Over_LMTP_a_cut_between_the_per_recipient_replies_reports_the_ones_that_came()
    {
        var error = await Assert.ThrowsAsync<StoreOutcomeUnknownException>(() => Play(Endpoint(StoreProtocol.Lmtp), async store =>
        {
            await store.GreetAsync("PIPELINING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>", "RCPT TO:<b@example.org>", "RCPT TO:<c@example.org>", "DATA");
            store.Reply("250 Ok", "250 Ok", "550 5.1.1 unknown", "250 Ok", "354 go");
            await store.MessageAsync();
            store.Reply("250 2.0.0 <a> saved");
            store.Cut();
        }, (c, ct) => Send(c, ct, "a@example.org", "b@example.org", "c@example.org")));

        Assert.Equal(new DeliveryStatus(250, "2.0.0", "<a> saved"), error.Known[0]);
        Assert.Equal(new DeliveryStatus(550, "5.1.1", "unknown"), error.Known[1]);
        Assert.Null(error.Known[2]);
    }

    // ---- BDAT (CHUNKING) ----

    private static async Task<string> ChunkAsync(ScriptedStore store, long expected)
    {
        Assert.Equal($"BDAT {expected} LAST", await store.LineAsync());
        return Encoding.ASCII.GetString(await store.BytesAsync(expected));
    }

    [Fact]
    public async Task One_recipient_with_CHUNKING_goes_as_one_BDAT_LAST_with_the_bytes_unstuffed_in_one_write()
    {
        var (status, reusable, replies) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING", "CHUNKING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>");
            Assert.Equal(Delivered, await ChunkAsync(store, Delivered.Length)); // before any reply: one round trip
            store.Reply("250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 Ok: queued as 9");
        }, async (c, ct) => (Assert.Single(await Send(c, ct, "a@example.org")), c.Reusable, c.RepliesInTransaction));

        Assert.Equal(new DeliveryStatus(250, "2.0.0", "Ok: queued as 9"), status);
        Assert.True(reusable);
        Assert.Equal(3, replies);
    }

    [Fact]
    public async Task A_refused_rcpt_over_BDAT_is_the_answer_and_the_transaction_is_reset()
    {
        var (status, reusable) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING", "CHUNKING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>");
            await ChunkAsync(store, Delivered.Length);
            store.Reply("250 Ok", "550 5.1.1 unknown", "554 5.5.1 no valid recipients");
            await ExpectAsync(store, "RSET");
            store.Reply("250 Ok");
        }, async (c, ct) => (Assert.Single(await Send(c, ct, "a@example.org")), c.Reusable));

        Assert.Equal(new DeliveryStatus(550, "5.1.1", "unknown"), status);
        Assert.True(reusable);
    }

    [Fact]
    public async Task A_refused_BDAT_is_the_answer_and_the_transaction_is_reset()
    {
        var status = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING", "CHUNKING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>");
            await ChunkAsync(store, Delivered.Length);
            store.Reply("250 Ok", "250 Ok", "552 5.3.4 too big");
            await ExpectAsync(store, "RSET");
            store.Reply("250 Ok");
        }, async (c, ct) => Assert.Single(await Send(c, ct, "a@example.org")));

        Assert.Equal(new DeliveryStatus(552, "5.3.4", "too big"), status);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public async Task A_cut_after_a_small_BDAT_went_out_with_MAIL_and_RCPT_leaves_the_outcome_unknown(int replies)
    {
        var error = await Assert.ThrowsAsync<StoreOutcomeUnknownException>(() => Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING", "CHUNKING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>");
            await ChunkAsync(store, Delivered.Length);
            store.Reply([.. Enumerable.Repeat("250 Ok", replies)]);
            store.Cut();
        }, (c, ct) => Send(c, ct, "a@example.org")));
        Assert.Equal([null], error.Known);
    }

    private static readonly string Large = "Subject: big\r\n\r\n" + string.Concat(Enumerable.Repeat(new string('x', 998) + "\r\n", 300)) + "end";

    [Fact]
    public async Task A_large_message_over_BDAT_waits_for_MAIL_and_RCPT_before_its_bytes()
    {
        var status = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING", "CHUNKING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>");
            Assert.True(await store.QuietAsync(Moment), "the bytes wait for the replies");
            store.Reply("250 Ok", "250 Ok");
            Assert.Equal(Prefix + Large + "\r\n", await ChunkAsync(store, Prefix.Length + Large.Length + 2));
            store.Reply("250 2.0.0 Ok");
        }, async (c, ct) => Assert.Single(await c.SendAsync(Sender, ["a@example.org"], NoParameters, Encoding.ASCII.GetBytes(Prefix), Message(Large), ct)));

        Assert.Equal(250, status.Code);
    }

    [Fact]
    public async Task A_large_message_over_BDAT_to_a_refused_rcpt_is_never_sent()
    {
        var status = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING", "CHUNKING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>");
            store.Reply("250 Ok", "550 5.1.1 unknown");
            await ExpectAsync(store, "RSET");
            store.Reply("250 Ok");
            Assert.True(await store.QuietAsync(Moment));
        }, async (c, ct) => Assert.Single(await c.SendAsync(Sender, ["a@example.org"], NoParameters, Encoding.ASCII.GetBytes(Prefix), Message(Large), ct)));

        Assert.Equal(550, status.Code);
    }

    [Fact]
    public async Task A_cut_before_a_large_BDAT_went_out_is_transient()
    {
        await Assert.ThrowsAsync<SmtpConnectionException>(() => Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING", "CHUNKING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>");
            store.Reply("250 Ok");
            store.Cut();
        }, (c, ct) => c.SendAsync(Sender, ["a@example.org"], NoParameters, Encoding.ASCII.GetBytes(Prefix), Message(Large), ct)));
    }

    [Fact]
    public async Task A_protocol_error_over_BDAT_drops_the_session()
    {
        var (status, reusable) = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING", "CHUNKING");
            await ExpectAsync(store, $"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>");
            await ChunkAsync(store, Delivered.Length);
            store.Reply("250 Ok", "354 what", "250 Ok");
            Assert.True(await store.QuietAsync(Moment), "no RSET on a session in an unknown state");
        }, async (c, ct) => (Assert.Single(await Send(c, ct, "a@example.org")), c.Reusable));

        Assert.Equal(new DeliveryStatus(451, "4.5.0", "Mail store protocol error: unexpected reply to RCPT: 354 what"), status);
        Assert.False(reusable);
    }

    [Theory]
    [InlineData(true, "CHUNKING")] // several recipients: replies after BDAT could not be told apart over LMTP
    [InlineData(false, "CHUNKING")] // Bridge:Legacy:Chunking=false
    [InlineData(true, "8BITMIME")] // no CHUNKING offered
    public async Task DATA_is_used_when_BDAT_does_not_fit(bool chunking, string extension)
    {
        var recipients = extension == "CHUNKING" && chunking ? new[] { "a@example.org", "b@example.org" } : ["a@example.org"];
        var statuses = await Play(Endpoint(chunking: chunking), async store =>
        {
            await store.GreetAsync("PIPELINING", extension);
            await ExpectAsync(store, [$"MAIL FROM:<{Sender}>", .. recipients.Select(r => $"RCPT TO:<{r}>"), "DATA"]);
            store.Reply([.. Enumerable.Repeat("250 Ok", recipients.Length + 1), "354 go"]);
            Assert.Equal(Delivered, await store.MessageAsync());
            store.Reply("250 Ok");
        }, (c, ct) => Send(c, ct, recipients));

        Assert.All(statuses, s => Assert.Equal(250, s.Code));
    }

    // ---- what goes into MAIL and RCPT ----

    [Fact]
    public async Task Parameters_go_out_only_when_the_store_offers_their_extension()
    {
        var parameters = new Dictionary<string, string> { ["BODY"] = "8bitmime", ["SMTPUTF8"] = "", ["RET"] = "HDRS", ["ENVID"] = "id1" };
        async Task<string[]> Lines(params string[] extensions)
        {
            string[] lines = [];
            await Play(Endpoint(), async store =>
            {
                await store.GreetAsync(["PIPELINING", .. extensions]);
                var mail = await store.LineAsync();
                var rcpt = await store.LineAsync();
                await ExpectAsync(store, "DATA");
                store.Reply("250 Ok", "250 Ok", "354 go");
                await store.MessageAsync();
                store.Reply("250 Ok");
                lines = [mail, rcpt];
            }, (c, ct) => c.SendAsync(Sender, ["a@example.org"], parameters, Encoding.ASCII.GetBytes(Prefix), Message(), ct,
                ["NOTIFY=FAILURE ORCPT=rfc822;a@example.org"]));
            return lines;
        }

        var plain = await Lines();
        Assert.Equal([$"MAIL FROM:<{Sender}>", "RCPT TO:<a@example.org>"], plain);
        var all = await Lines("SIZE", "8BITMIME", "SMTPUTF8", "DSN");
        Assert.Equal($"MAIL FROM:<{Sender}> SIZE={Delivered.Length} BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id1", all[0]);
        Assert.Equal("RCPT TO:<a@example.org> NOTIFY=FAILURE ORCPT=rfc822;a@example.org", all[1]);
    }

    [Theory]
    [InlineData("bad>@example.org SIZE=1", "a@example.org", "5.1.7")]
    [InlineData(Sender, "a@example.org>\r\nRSET", "5.1.3")]
    public async Task An_address_that_cannot_go_in_a_command_is_refused_without_sending_anything(string sender, string recipient, string enhanced)
    {
        var statuses = await Play(Endpoint(), async store =>
        {
            await store.GreetAsync("PIPELINING");
            Assert.True(await store.QuietAsync(Moment), "nothing is sent");
        }, (c, ct) => c.SendAsync(sender, [recipient, "b@example.org"], NoParameters, default, Message(), ct));

        Assert.Equal(2, statuses.Count);
        Assert.All(statuses, s => Assert.Equal((553, enhanced), (s.Code, s.Enhanced)));
    }
}
