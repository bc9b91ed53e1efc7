using System.Text;
using Bridge.Intake;
using Bridge.Intake.Adapters;

namespace Bridge.UnitTests.Intake.Adapters;

/// <summary>The parts InputGuardStream is composed of, each on its own: the memory budget, the eviction clock and the
/// command framing (the idle limit needs a socket: the integration tier's SessionLimitTests).</summary>
public class InputGuardPartsTests
{
    [Fact]
    public void A_line_longer_than_the_limit_is_refused_even_split_across_reads()
    {
        var budget = new InputBudget(maxMessageBytes: 1000, maxLineBytes: 10, gate: null);
        Assert.Null(budget.Admit("EHLO x\r\nMAIL"u8));
        Assert.Null(budget.Admit(" FRO"u8)); // "MAIL FRO": 8 bytes of a line so far
        Assert.Equal(Replies.LineTooLong, budget.Admit("M:<a@b>\r\n"u8));
    }

    [Fact]
    public void Bytes_between_replies_are_capped_and_a_reply_starts_the_count_again()
    {
        var budget = new InputBudget(maxMessageBytes: 10, maxLineBytes: 1 << 30, gate: null);
        var chunk = new byte[(1 << 20) + 20]; // 2 x 10 + 1 MiB exactly
        Assert.Null(budget.Admit(chunk));
        Assert.Equal(chunk.Length, budget.SinceReply);
        budget.ReplyWritten();
        Assert.Equal(0, budget.SinceReply);
        Assert.Null(budget.Admit(chunk));
        Assert.Equal(Replies.StreamTooLong, budget.Admit("x"u8));
    }

    [Fact]
    public async Task A_session_waiting_for_its_client_is_slow_but_not_while_Bridge_has_the_turn_and_is_evicted_once()
    {
        var budget = new InputBudget(1000, 1000, null);
        using var eviction = new SlowSessionEviction(budget);
        await Task.Delay(20);
        Assert.True(eviction.IsSlow(TimeSpan.FromMilliseconds(10)));
        Assert.False(eviction.IsSlow(TimeSpan.FromMinutes(1)));
        eviction.AwaitingServer();
        Assert.False(eviction.IsSlow(TimeSpan.Zero));
        eviction.ReplyWritten();
        Assert.True(eviction.Waiting < TimeSpan.FromSeconds(5));

        Assert.True(eviction.Evict());
        Assert.True(eviction.Token.IsCancellationRequested);
        Assert.False(eviction.Evict());
        Assert.False(eviction.IsSlow(TimeSpan.Zero)); // evicted already: not chosen again
    }

    [Fact]
    public void Commands_go_one_line_per_read_and_message_bytes_in_bulk()
    {
        var handed = 0;
        var framing = new CommandFraming(1000, session: null, () => handed++);
        Feed(framing, "NOOP\r\nDATA\r\n");
        Assert.Equal(["NOOP\r\n", "DATA\r\n"], Drain(framing));
        Assert.Equal(2, handed);

        framing.ReplyWritten(opensData: true); // 354
        Feed(framing, "a\r\nb\r\n.\r\nQUIT\r\n");
        Assert.Equal(["a\r\nb\r\n.\r\n", "QUIT\r\n"], Drain(framing));
        Assert.Equal(4, handed); // the message, then QUIT
    }

    [Fact]
    public void A_MAIL_line_is_screened_and_an_LMTP_greeting_translated_leaving_the_verdicts_on_the_wire()
    {
        var wire = new SessionWire { State = new SessionState { Lmtp = true } };
        var framing = new CommandFraming(1000, wire, () => { });
        Feed(framing, "LHLO client\r\nMAIL FROM:<a@b> SIZE=abc\r\nHELO x\r\n");
        var lines = Drain(framing, stopAfter: 2);
        Assert.Equal(["EHLO client\r\n", "MAIL FROM:<a@b>\r\n"], lines);
        Assert.Equal(Replies.BadSize, wire.ScreenedLine.Refusal);
        Assert.Equal(["NOOP\r\n"], Drain(framing));
        Assert.Null(wire.ScreenedLine.Refusal);
        Assert.Equal(Replies.UseLhlo, wire.NextReplyOverride);
    }

    [Fact]
    public void A_line_longer_than_the_reader_asks_for_is_handed_on_in_parts()
    {
        var framing = new CommandFraming(1000, session: null, () => { });
        Feed(framing, "RCPT TO:<someone@example.org>\r\n");
        var part = new byte[8];
        var text = new StringBuilder();
        for (int n; (n = framing.HandOut(part)) > 0;)
        {
            text.Append(Encoding.ASCII.GetString(part, 0, n));
        }
        Assert.Equal("RCPT TO:<someone@example.org>\r\n", text.ToString());
    }

    [Fact]
    public void At_the_end_of_input_the_last_bytes_without_a_line_end_are_handed_on()
    {
        var framing = new CommandFraming(1000, session: null, () => { });
        Feed(framing, "QUI");
        var buffer = new byte[64];
        Assert.Equal(0, framing.HandOut(buffer));
        Assert.Equal(3, framing.HandOutRest(buffer));
        Assert.Equal(0, framing.HandOutRest(buffer));
    }

    private static void Feed(CommandFraming framing, string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        var space = framing.Space();
        bytes.CopyTo(space);
        framing.Filled(bytes.Length);
    }

    private static List<string> Drain(CommandFraming framing, int stopAfter = int.MaxValue)
    {
        var reads = new List<string>();
        var buffer = new byte[4096];
        for (int n; reads.Count < stopAfter && (n = framing.HandOut(buffer)) > 0;)
        {
            reads.Add(Encoding.ASCII.GetString(buffer, 0, n));
        }
        return reads;
    }
}
