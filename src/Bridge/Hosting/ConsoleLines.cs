// Job: one write(2) per log line when standard output is a pipe or journald's stream (systemd): the runtime's
// Console.Out has a 256-byte buffer, so a delivery's log line of about 300 bytes went out in two writes, a system
// call per message more than needed (bench/README.md) and a line journald could read in two halves. The replacement
// keeps AutoFlush (every Write reaches the file at once) with a buffer larger than any line Bridge writes.
// Failure: none; on a terminal the runtime's own writer stays (it knows the terminal).
using System.Text;

namespace Bridge.Hosting;

public static class ConsoleLines
{
    /// <summary>Larger than any line Bridge logs (a long line is still written whole, in more than one call).</summary>
    private const int BufferBytes = 16 * 1024;

    public static void WriteWholeLines()
    {
        if (!Console.IsOutputRedirected)
        {
            return;
        }
        Console.SetOut(new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), BufferBytes)
        {
            AutoFlush = true,
        });
    }
}
