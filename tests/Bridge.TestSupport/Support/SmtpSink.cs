// Job: Postfix's smtp-sink(1) as a mail store that misbehaves on request, e.g. "-q ." (hang up without a reply
// after the message) or "-r RCPT" (4xx for every recipient); every transaction it received is dumped to a file.
// Failure: smtp-sink missing -> the install command; one that does not listen within 10 s fails the test.
using System.Diagnostics;
using System.Net.Sockets;

namespace Bridge.Tests.Support;

public sealed class SmtpSink : IDisposable
{
    private readonly Process _process;
    private readonly TempDir _dumps;

    private SmtpSink(Process process, TempDir dumps, int port)
    {
        _process = process;
        _dumps = dumps;
        Port = port;
    }

    public int Port { get; }

    /// <summary>Transactions that reached the end of their message ("." received), one dump file each.</summary>
    public int Received => Directory.GetFiles(_dumps.Path).Length;

    /// <summary>What each transaction's dump holds (envelope and message), as text.</summary>
    public IReadOnlyList<string> Dumps => [.. Directory.GetFiles(_dumps.Path).Order(StringComparer.Ordinal).Select(File.ReadAllText)];

    public static async Task<SmtpSink> StartAsync(params string[] options)
    {
        var sink = Peers.Require("smtp-sink", "postfix");
        var dumps = new TempDir("bridge-sink", TempDir.Mode("777"));
        var port = FreePort.Next();
        var info = new ProcessStartInfo(sink) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])["-u", "nobody", "-d", Path.Combine(dumps.Path, "%H%M%S."), .. options, $"127.0.0.1:{port}", "100"])
        {
            info.ArgumentList.Add(arg);
        }
        var process = Process.Start(info)!;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(System.Net.IPAddress.Loopback, port);
                return new SmtpSink(process, dumps, port);
            }
            catch (SocketException) when (clock.Elapsed < TimeSpan.FromSeconds(10) && !process.HasExited)
            {
                await Task.Delay(100);
            }
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }
        _process.Dispose();
        _dumps.Dispose();
    }
}
