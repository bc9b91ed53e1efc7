using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;
using Bridge.Intake.Adapters;
using SmtpServer;
using SmtpServer.ComponentModel;
using SmtpServer.IO;
using SmtpServer.Mail;
using SmtpServer.Net;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace Bridge.UnitTests.Intake.Adapters;

/// <summary>The library's own reply texts that ReplyTextStream recognises word for word (typos included) are still what
/// the library writes: each is provoked from a real SmtpServer (in process, on a loopback socket, no Bridge adapter in
/// between) through a plain socket client. A package update that changes one fails here, naming the text, instead of
/// letting the raw library text reach Bridge's clients.</summary>
public class LibraryReplyTextTests
{
    /// <summary>How each recognised text is provoked: the library's settings and the lines a client sends (the reply
    /// to the last line is the one pinned). Some texts SmtpServer 11.1.0 no longer writes for any input tried (its
    /// parser answers every malformed command "502 Unrecognized command"; a refused sender gets "550"; its state machine
    /// refuses what these would answer): for those the reply it writes instead is pinned (<c>Instead</c>, a prefix), so
    /// that any new text there fails too, and where the text is one of the library's public constants, so is that.</summary>
    private static readonly Dictionary<string, Scenario> Scenarios = new(StringComparer.Ordinal)
    {
        ["250 Ok"] = new(["EHLO client.test", "NOOP"]),
        ["221 bye"] = new(["EHLO client.test", "QUIT"]),
        ["221 Timeout while waiting for input."] = new([], CommandWait: TimeSpan.FromMilliseconds(300)),
        ["221 The session has be cancelled."] = new(["EHLO client.test", "MAIL FROM:<cancel@b.test>"]),
        ["501 syntax error"] = new(["HELO"], Instead: "502 Unrecognized command", Constant: () => SmtpResponse.SyntaxError),
        ["501 "] = new(["EHLO client.test", "MAIL FROM:a@b.test"], Instead: "502 Unrecognized command"),
        ["501 missing the TO:"] = new(["EHLO client.test", "MAIL FROM:<a@b.test>", "RCPT TO <c@d.test>"], Instead: "502 Unrecognized command"),
        ["501 missing the FROM:"] = new(["EHLO client.test", "MAIL <a@b.test>"], Instead: "502 Unrecognized command"),
        ["502 Unrecognized command"] = new(["EHLO client.test", "FROB"]),
        ["503 bad sequence of commands"] = new(["EHLO client.test", "MAIL FROM:<a@b.test>", "MAIL FROM:<a@b.test>"],
            Instead: "501 expected ", Constant: () => SmtpResponse.BadSequence),
        ["550 mailbox unavailable"] = new(["EHLO client.test", "MAIL FROM:<a@b.test>", "RCPT TO:<nobody@d.test>"]),
        ["553 mailbox name not allowed"] = new(["EHLO client.test", "MAIL FROM:<refused@b.test>"],
            Instead: "550 mailbox unavailable", Constant: () => SmtpResponse.MailboxNameNotAllowed),
        ["552 size limit exceeded"] = new(["EHLO client.test", "MAIL FROM:<a@b.test> SIZE=5000"], MaxSize: 100),
        ["552 message size exceeds fixed maximium message size"] = new(
            ["EHLO client.test", "MAIL FROM:<a@b.test>", "RCPT TO:<c@d.test>", "DATA", string.Join("\r\n", Enumerable.Repeat(new string('x', 500), 1000)) + "\r\n."],
            MaxSize: 100),
        ["554 no valid recipients given"] = new(["EHLO client.test", "MAIL FROM:<a@b.test>", "RCPT TO:<nobody@d.test>", "DATA"],
            Instead: "501 expected ", Constant: () => SmtpResponse.NoValidRecipientsGiven),
        ["554 "] = new(["EHLO client.test", "MAIL FROM:<a@b.test>", "RCPT TO:<c@d.test>", "DATA", "Subject: fail\r\n\r\nbody\r\n."],
            Constant: () => SmtpResponse.TransactionFailed),
    };

    public static TheoryData<string> RecognisedTexts => [.. ReplyTextStream.FixedReplies.Keys];

    [Fact]
    public void Every_recognised_text_has_a_scenario_here() =>
        Assert.Equal(ReplyTextStream.FixedReplies.Keys.Order(StringComparer.Ordinal), Scenarios.Keys.Order(StringComparer.Ordinal));

    [Theory]
    [MemberData(nameof(RecognisedTexts))]
    public async Task The_library_still_writes(string text)
    {
        Assert.True(Scenarios.TryGetValue(text, out var scenario), $"no scenario provokes the library text \"{text}\"");
        if (scenario.Constant is { } constant)
        {
            var written = $"{(int)constant().ReplyCode} {constant().Message}";
            Assert.True(written == text, $"SmtpServer's constant for \"{text}\" (ReplyTextStream rewrites that text word for word) now reads \"{written}\"");
        }
        var replies = await RunAsync(scenario);
        var last = replies[^1];
        var same = last == text || last.StartsWith(text + ", ", StringComparison.Ordinal);
        var instead = scenario.Instead is { } other && last.StartsWith(other, StringComparison.Ordinal);
        Assert.True(same || instead,
            $"SmtpServer no longer writes \"{text}\" (ReplyTextStream rewrites that text word for word){(scenario.Instead is null ? "" : $" nor \"{scenario.Instead}...\" in its place")}: it wrote \"{last}\" [{string.Join(" | ", replies)}]");
    }

    [Fact]
    public async Task The_library_still_appends_its_retry_count_and_drops_the_session_at_zero()
    {
        var replies = await RunAsync(new(["EHLO client.test", "FROB", "FROB"], MaxRetries: 2), expectClose: true);
        var pattern = new Regex(ReplyTextStream.RetrySuffixPattern);
        Assert.True(replies[^2] == "502 Unrecognized command, 1 retry(ies) remaining." && pattern.IsMatch(replies[^2]),
            $"SmtpServer no longer appends \", N retry(ies) remaining.\" (ReplyTextStream removes it): it wrote \"{replies[^2]}\"");
        Assert.True(replies[^1] == "502 Unrecognized command, 0 retry(ies) remaining." && pattern.Match(replies[^1]).Groups[1].Value == "0",
            $"SmtpServer's last error reply changed (ReplyTextStream adds its 421 after \"0 retry(ies) remaining.\"): it wrote \"{replies[^1]}\"");
    }

    [Fact]
    public async Task The_library_still_says_expected_for_a_command_out_of_sequence()
    {
        var replies = await RunAsync(new(["EHLO client.test", "RCPT TO:<c@d.test>"]));
        Assert.True(replies[^1].StartsWith(ReplyTextStream.OutOfSequencePrefix, StringComparison.Ordinal),
            $"SmtpServer no longer answers a command out of sequence with \"{ReplyTextStream.OutOfSequencePrefix}...\" (ReplyTextStream turns it into 503): it wrote \"{replies[^1]}\"");
    }

    [Fact]
    public async Task The_library_still_opens_data_with_354()
    {
        var replies = await RunAsync(new(["EHLO client.test", "MAIL FROM:<a@b.test>", "RCPT TO:<c@d.test>", "DATA"]));
        Assert.True(replies[^1].StartsWith("354 ", StringComparison.Ordinal),
            $"SmtpServer no longer opens message input with \"354\" (ReplyTextStream and the input guard look for it): it wrote \"{replies[^1]}\"");
    }

    private sealed record Scenario(string[] Lines, TimeSpan? CommandWait = null, int MaxSize = 0, int MaxRetries = 5, string? Instead = null,
        Func<SmtpResponse>? Constant = null);

    /// <summary>The reply to the greeting, then to each line (each as its last line); with <paramref name="expectClose"/>
    /// also checks that the library closed the connection after the last one.</summary>
    private static async Task<List<string>> RunAsync(Scenario scenario, bool expectClose = false)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var listener = new LoopbackListener();
        var builder = new SmtpServerOptionsBuilder()
            .ServerName("library.test")
            .MaxRetryCount(scenario.MaxRetries)
            .CommandWaitTimeout(scenario.CommandWait ?? TimeSpan.FromSeconds(30))
            .Endpoint(e => e.Endpoint(listener.Endpoint));
        if (scenario.MaxSize > 0)
        {
            builder = builder.MaxMessageSize(scenario.MaxSize, MaxMessageSizeHandling.Strict);
        }
        var services = new SmtpServer.ComponentModel.ServiceProvider();
        services.Add(listener);
        services.Add(new RefusingFilter());
        services.Add(new FailingStore());
        var server = new SmtpServer.SmtpServer(builder.Build(), services);
        var running = server.StartAsync(timeout.Token);
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(listener.Endpoint, timeout.Token);
            var stream = client.GetStream();
            var reader = new ReplyReader(stream);
            var replies = new List<string> { await reader.ReplyAsync(timeout.Token) };
            foreach (var line in scenario.Lines)
            {
                await stream.WriteAsync(Encoding.ASCII.GetBytes(line + "\r\n"), timeout.Token);
                try
                {
                    replies.Add(await reader.ReplyAsync(timeout.Token));
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException)
                {
                    throw new IOException($"no reply to \"{line[..Math.Min(line.Length, 40)]}\" ({ex.GetType().Name}) after [{string.Join(" | ", replies)}]", ex);
                }
            }
            if (scenario.CommandWait is not null)
            {
                replies.Add(await reader.ReplyAsync(timeout.Token));
            }
            if (expectClose)
            {
                Assert.True(await reader.AtEndAsync(timeout.Token), "SmtpServer no longer closes the session after \"0 retry(ies) remaining.\"");
            }
            return replies;
        }
        finally
        {
            server.Shutdown();
            await Task.WhenAny(running, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None));
        }
    }

    /// <summary>Refuses the sender "refused@..." and the recipient "nobody@..."; is cancelled for "cancel@..."; accepts the rest.</summary>
    private sealed class RefusingFilter : IMailboxFilter
    {
        public Task<bool> CanAcceptFromAsync(ISessionContext context, IMailbox from, int size, CancellationToken cancellationToken) =>
            from.User == "cancel" ? throw new OperationCanceledException() : Task.FromResult(from.User != "refused");

        public Task<bool> CanDeliverToAsync(ISessionContext context, IMailbox to, IMailbox from, CancellationToken cancellationToken) =>
            Task.FromResult(to.User != "nobody");
    }

    /// <summary>A store that fails: the library answers with its bare transaction-failed reply.</summary>
    private sealed class FailingStore : IMessageStore
    {
        public Task<SmtpResponse> SaveAsync(ISessionContext context, IMessageTransaction transaction, ReadOnlySequence<byte> buffer,
            CancellationToken cancellationToken) => throw new InvalidOperationException("the store fails");
    }

    /// <summary>One loopback socket bound before the server starts; each session is a plain pipe on an accepted socket.</summary>
    private sealed class LoopbackListener : IEndpointListenerFactory, IEndpointListener
    {
        private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

        public LoopbackListener()
        {
            _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _socket.Listen(4);
            Endpoint = (IPEndPoint)_socket.LocalEndPoint!;
        }

        public IPEndPoint Endpoint { get; }

        public IEndpointListener CreateListener(IEndpointDefinition endpointDefinition) => this;

        public async Task<ISecurableDuplexPipe> GetPipeAsync(ISessionContext context, CancellationToken cancellationToken)
        {
            var client = await _socket.AcceptAsync(cancellationToken);
            return new PlainPipe(new NetworkStream(client, ownsSocket: true));
        }

        public void Dispose() => _socket.Dispose();
    }

    private sealed class PlainPipe(NetworkStream stream) : ISecurableDuplexPipe
    {
        public PipeReader Input { get; } = PipeReader.Create(stream);

        public PipeWriter Output { get; } = PipeWriter.Create(stream);

        public bool IsSecure => false;

        public SslProtocols SslProtocol => SslProtocols.None;

        public Task UpgradeAsync(X509Certificate certificate, SslProtocols protocols, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public void Dispose() => stream.Dispose();
    }

    /// <summary>Reads whole replies (the last line of a multi-line one).</summary>
    private sealed class ReplyReader(Stream stream)
    {
        private readonly List<byte> _bytes = [];

        public async Task<string> ReplyAsync(CancellationToken cancellationToken)
        {
            while (true)
            {
                var line = await LineAsync(cancellationToken) ?? throw new IOException("the library closed the connection");
                if (line.Length < 4 || line[3] != '-')
                {
                    return line;
                }
            }
        }

        public async Task<bool> AtEndAsync(CancellationToken cancellationToken) => await LineAsync(cancellationToken) is null;

        private async Task<string?> LineAsync(CancellationToken cancellationToken)
        {
            var buffer = new byte[1024];
            while (true)
            {
                var lf = _bytes.IndexOf((byte)'\n');
                if (lf >= 0)
                {
                    var line = Encoding.Latin1.GetString([.. _bytes.Take(lf)]).TrimEnd('\r');
                    _bytes.RemoveRange(0, lf + 1);
                    return line;
                }
                var n = await stream.ReadAsync(buffer, cancellationToken);
                if (n == 0)
                {
                    return null;
                }
                _bytes.AddRange(buffer.AsSpan(0, n));
            }
        }
    }
}
