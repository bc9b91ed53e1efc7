using System.Text;
using Bridge.Intake;
using Bridge.Intake.Adapters;

namespace Bridge.UnitTests.Intake.Adapters;

/// <summary>Pure logic: finding the CRLF "." CRLF that ends a message, wherever reads split it.</summary>
public class CommandFramingScanTests
{
    [Theory]
    [InlineData("body\r\n.\r\nQUIT\r\n", 2, 9)]
    [InlineData(".\r\n", 2, 3)]          // an empty message: the DATA line's CRLF counts
    [InlineData("a\r\n..\r\n.\r\n", 0, 10)] // a stuffed dot line is not the end
    [InlineData("no end here\r\n", 0, -1)]
    public void Finds_the_end_of_data_in_one_read(string text, int state, int expected) =>
        Assert.Equal(expected, CommandFraming.Scan(Encoding.ASCII.GetBytes(text), state, out _));

    [Fact]
    public void Finds_the_end_of_data_split_at_every_possible_place()
    {
        var message = Encoding.ASCII.GetBytes("line one\r\n.dot\r\nline two\r\n.\r\nMAIL FROM:<x@y>\r\n");
        var end = message.AsSpan().IndexOf("\r\n.\r\n"u8) + 5;
        for (var cut = 0; cut <= message.Length; cut++)
        {
            for (var cut2 = cut; cut2 <= message.Length; cut2 += 3)
            {
                var state = 0;
                var found = -1;
                var offset = 0;
                foreach (var (from, to) in new[] { (0, cut), (cut, cut2), (cut2, message.Length) })
                {
                    var at = CommandFraming.Scan(message.AsSpan(from, to - from), state, out state);
                    if (at >= 0)
                    {
                        found = offset + at;
                        break;
                    }
                    offset = to;
                }
                Assert.True(end == found, $"cuts at {cut} and {cut2}: found {found}, expected {end}");
            }
        }
    }
}
