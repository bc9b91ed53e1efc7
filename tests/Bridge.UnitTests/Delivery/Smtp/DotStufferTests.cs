using System.Text;
using Bridge.Delivery.Smtp;

namespace Bridge.UnitTests.Delivery.Smtp;

/// <summary>Pure logic: SMTP transparency when the message arrives in segments cut anywhere, also between CR and LF.</summary>
public class DotStufferTests
{
    private static string Stuff(params string[] segments)
    {
        var stuffer = new DotStuffer();
        var pieces = new List<ReadOnlyMemory<byte>>();
        foreach (var segment in segments)
        {
            stuffer.Stuff(Encoding.ASCII.GetBytes(segment), pieces);
        }
        return string.Concat(pieces.Select(p => Encoding.ASCII.GetString(p.Span)));
    }

    private const string Message = ".first\r\nplain\r\n.second\r\n..third\r\nbare\n.not a line start\r\nend.\r\n.";
    private const string Stuffed = "..first\r\nplain\r\n..second\r\n...third\r\nbare\n.not a line start\r\nend.\r\n..";

    [Fact]
    public void Every_line_that_begins_with_a_dot_gets_a_second_one() => Assert.Equal(Stuffed, Stuff(Message));

    [Fact]
    public void The_result_is_the_same_wherever_the_message_is_cut_in_two_or_three()
    {
        for (var i = 0; i <= Message.Length; i++)
        {
            Assert.Equal(Stuffed, Stuff(Message[..i], Message[i..]));
            for (var j = i; j <= Message.Length; j += 3)
            {
                Assert.Equal(Stuffed, Stuff(Message[..i], Message[i..j], Message[j..]));
            }
        }
    }

    [Fact]
    public void One_byte_segments_and_empty_segments_change_nothing() =>
        Assert.Equal(Stuffed, Stuff([.. Message.SelectMany(c => new[] { c.ToString(), "" })]));

    [Fact]
    public void A_bare_cr_or_lf_before_a_dot_is_no_line_end()
    {
        Assert.Equal("a\r.b", Stuff("a\r", ".b"));
        Assert.Equal("a\n.b", Stuff("a\n", ".b"));
    }
}
