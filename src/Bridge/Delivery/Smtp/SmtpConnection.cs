// Job: one open SMTP or LMTP session with a relay (the mail store, or the MTA that takes bounces): greeting, EHLO/LHLO, optional STARTTLS (or implicit
// TLS) and AUTH PLAIN, then transactions that relay the original envelope and the message bytes unchanged
// (dot-stuffing exactly undoes SmtpServer's unstuffing; with CHUNKING a one-recipient message goes as BDAT, bytes
// as they are). MAIL, RCPTs and DATA (or BDAT) are pipelined when the store offers PIPELINING.
// Failure: anything at connection level (refused, reset, closed, TLS, auth, garbled, "530 authentication
// required") before the message was sent throws SmtpConnectionException or an IOException/SocketException:
// transient, the caller may try again. Once the message is sent (final dot, or the BDAT LAST chunk), a missing
// or non-final reply throws StoreOutcomeUnknownException: the store may have the message, so it must not be sent
// again. Replies to MAIL/RCPT/DATA/BDAT are returned per recipient as DeliveryStatus values, never thrown; a
// reply with a code that cannot come at that point (e.g. 354 to RCPT) is a 451 4.5.0 protocol error.
using System.Buffers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Bridge.Common;
using Bridge.Delivery.Smtp;

namespace Bridge.Delivery.Smtp;

internal sealed class SmtpConnection : IAsyncDisposable
{
    private readonly TcpClient _client;
    private readonly SmtpEndpoint _endpoint;
    private readonly LineReader _reader;
    private Stream _stream;
    private BufferedStream _out;
    private readonly List<ReadOnlyMemory<byte>> _pieces = [];
    private HashSet<string> _extensions = new(StringComparer.OrdinalIgnoreCase);

    private SmtpConnection(TcpClient client, SmtpEndpoint endpoint)
    {
        _client = client;
        _endpoint = endpoint;
        _stream = Stream.Null; // the transport is attached once connected (UseTransport)
        _out = new BufferedStream(Stream.Null);
        _reader = new LineReader(Stream.Null);
    }

    public SmtpEndpoint Endpoint => _endpoint;

    /// <summary>False once the session is in an unknown state; such a connection is not reused.</summary>
    public bool Reusable { get; private set; } = true;

    /// <summary>The store's greeting line (text after the code).</summary>
    public string Greeting { get; private set; } = "";

    /// <summary>Replies read since the current transaction began: 0 means the store has not answered it at all.</summary>
    public int RepliesInTransaction { get; private set; }

    public static async Task<SmtpConnection> OpenAsync(SmtpEndpoint endpoint, CancellationToken cancellationToken)
    {
        var client = new TcpClient { NoDelay = true };
        var connection = new SmtpConnection(client, endpoint);
        try
        {
            await client.ConnectAsync(endpoint.Host, endpoint.Port, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return await connection.StartAsync(client.GetStream(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A session over a transport that is already open (the unit tests' scripted store), begun as OpenAsync
    /// begins one.</summary>
    internal static Task<SmtpConnection> OpenAsync(Stream transport, SmtpEndpoint endpoint, CancellationToken cancellationToken) =>
        new SmtpConnection(new TcpClient(), endpoint).StartAsync(transport, cancellationToken);

    /// <summary>Greeting, EHLO/LHLO, TLS and AUTH on a connected transport; disposes the connection when any fails.</summary>
    private async Task<SmtpConnection> StartAsync(Stream transport, CancellationToken cancellationToken)
    {
        var connection = this;
        var endpoint = _endpoint;
        try
        {
            connection.UseTransport(transport);
            if (endpoint.Tls == StoreTls.Implicit)
            {
                await connection.StartTlsAsync(cancellationToken).ConfigureAwait(false);
            }
            connection.Greeting = (await connection.ExpectAsync(220, "greeting", cancellationToken).ConfigureAwait(false)).ToString();
            await connection.HelloAsync(cancellationToken).ConfigureAwait(false);
            if (endpoint.Tls == StoreTls.StartTls)
            {
                if (!connection._extensions.Contains("STARTTLS"))
                {
                    throw new SmtpConnectionException($"{endpoint} does not offer STARTTLS (Bridge:Legacy:Tls=StartTls)");
                }
                await connection.CommandAsync("STARTTLS", cancellationToken).ConfigureAwait(false);
                await connection.ExpectAsync(220, "STARTTLS", cancellationToken).ConfigureAwait(false);
                await connection.StartTlsAsync(cancellationToken).ConfigureAwait(false);
                await connection.HelloAsync(cancellationToken).ConfigureAwait(false);
            }
            if (!string.IsNullOrEmpty(endpoint.Username))
            {
                var token = Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0{endpoint.Username}\0{endpoint.Password}"));
                await connection.CommandAsync($"AUTH PLAIN {token}", cancellationToken).ConfigureAwait(false);
                await connection.ExpectAsync(235, "AUTH PLAIN", cancellationToken).ConfigureAwait(false);
            }
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task HelloAsync(CancellationToken cancellationToken)
    {
        var verb = _endpoint.Protocol == StoreProtocol.Lmtp ? "LHLO" : "EHLO";
        await CommandAsync($"{verb} {_endpoint.HeloName}", cancellationToken).ConfigureAwait(false);
        var lines = await SmtpReply.ReadAsync(_reader, cancellationToken).ConfigureAwait(false);
        var reply = SmtpReply.Parse(lines);
        if (!reply.IsSuccess)
        {
            throw new SmtpConnectionException($"{_endpoint} refused {verb}: {reply}");
        }
        _extensions = new HashSet<string>(lines.Skip(1).Select(l => l[4..].Split(' ')[0]), StringComparer.OrdinalIgnoreCase);
    }

    private async Task StartTlsAsync(CancellationToken cancellationToken)
    {
        var tls = new SslStream(_stream, leaveInnerStreamOpen: false, ValidateCertificate);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = _endpoint.Host }, cancellationToken)
            .ConfigureAwait(false);
        UseTransport(tls);
    }

    private void UseTransport(Stream transport)
    {
        _stream = transport;
        _out = new BufferedStream(transport, 64 * 1024);
        _reader.Stream = transport;
    }

    private bool ValidateCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }
        if (certificate is null || string.IsNullOrEmpty(_endpoint.TrustedCertificate) || errors.HasFlag(SslPolicyErrors.RemoteCertificateNameMismatch))
        {
            return false;
        }
        try
        {
            var trusted = new X509Certificate2Collection();
            trusted.ImportFromPemFile(_endpoint.TrustedCertificate);
            using var custom = new X509Chain();
            custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            custom.ChainPolicy.CustomTrustStore.AddRange(trusted);
            using var presented = new X509Certificate2(certificate);
            return custom.Build(presented);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return false; // an unreadable trust file trusts nothing (it is checked when the configuration loads)
        }
    }

    /// <summary>Relays one message. Returns one status per recipient, in order.</summary>
    /// <param name="rcptParameters">Per recipient, its DSN parameters ("NOTIFY=... ORCPT=..."), sent only to a store that
    /// offers DSN (RFC 3461), as are MAIL's RET and ENVID; dropped quietly otherwise.</param>
    public async Task<IReadOnlyList<DeliveryStatus>> SendAsync(string sender, IReadOnlyList<string> recipients,
        IReadOnlyDictionary<string, string> mailParameters, ReadOnlyMemory<byte> prefix, ReadOnlySequence<byte> message,
        CancellationToken cancellationToken, IReadOnlyList<string?>? rcptParameters = null)
    {
        if (!CommandAddress.IsSafe(sender) || recipients.Any(r => !CommandAddress.IsSafe(r)))
        {
            // An address read from a file someone else wrote (a spool's Return-Path) must not add parameters or commands.
            var bad = new DeliveryStatus(553, CommandAddress.IsSafe(sender) ? "5.1.3" : "5.1.7",
                "Bad address syntax: it cannot be sent in a command as it is (Bridge did not send it)");
            return [.. recipients.Select(_ => bad)];
        }
        Reusable = false; // until the transaction has completed cleanly
        RepliesInTransaction = 0;
        _protocolError = false;
        var mail = MailCommand(sender, mailParameters, prefix.Length + message.Length + 2);
        var rcpts = RcptCommands(recipients, rcptParameters);

        if (recipients.Count == 1 && _endpoint.Chunking && _extensions.Contains("CHUNKING") && _extensions.Contains("PIPELINING"))
        {
            return [await SendChunkedAsync(mail, rcpts[0], prefix, message, cancellationToken).ConfigureAwait(false)];
        }
        return _extensions.Contains("PIPELINING")
            ? await SendPipelinedAsync(mail, rcpts, prefix, message, cancellationToken).ConfigureAwait(false)
            : await SendStepwiseAsync(mail, rcpts, prefix, message, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>MAIL FROM with the parameters the store offers: SIZE, BODY (8BITMIME or 7BIT only), SMTPUTF8, and with
    /// DSN the sender's RET and ENVID.</summary>
    private string MailCommand(string sender, IReadOnlyDictionary<string, string> mailParameters, long size)
    {
        var mail = new StringBuilder($"MAIL FROM:<{sender}>");
        if (_extensions.Contains("SIZE"))
        {
            mail.Append(" SIZE=").Append(size);
        }
        if (_extensions.Contains("8BITMIME") && mailParameters.TryGetValue("BODY", out var body) &&
            body.ToUpperInvariant() is "8BITMIME" or "7BIT")
        {
            mail.Append(" BODY=").Append(body.ToUpperInvariant());
        }
        if (_extensions.Contains("SMTPUTF8") && mailParameters.ContainsKey("SMTPUTF8"))
        {
            mail.Append(" SMTPUTF8");
        }
        foreach (var keyword in _extensions.Contains("DSN") ? DsnMailParameters : [])
        {
            if (mailParameters.TryGetValue(keyword, out var value))
            {
                mail.Append(' ').Append(keyword).Append('=').Append(value);
            }
        }
        return mail.ToString();
    }

    /// <summary>One RCPT TO per recipient, with its DSN parameters when the store offers DSN.</summary>
    private List<string> RcptCommands(IReadOnlyList<string> recipients, IReadOnlyList<string?>? rcptParameters)
    {
        var dsn = _extensions.Contains("DSN");
        return [.. recipients.Select((recipient, i) => dsn && rcptParameters is not null && i < rcptParameters.Count && rcptParameters[i] is { Length: > 0 } p
            ? $"RCPT TO:<{recipient}> {p}"
            : $"RCPT TO:<{recipient}>")];
    }

    /// <summary>With PIPELINING, MAIL, every RCPT and DATA go out in one write (RFC 2920: DATA may end a group): one
    /// round trip to the store before the message instead of three. Then a reply is read for each of them, in order.</summary>
    private async Task<IReadOnlyList<DeliveryStatus>> SendPipelinedAsync(string mail, List<string> rcpts, ReadOnlyMemory<byte> prefix,
        ReadOnlySequence<byte> message, CancellationToken cancellationToken)
    {
        await WriteLineAsync(mail, cancellationToken).ConfigureAwait(false);
        foreach (var rcpt in rcpts)
        {
            await WriteLineAsync(rcpt, cancellationToken).ConfigureAwait(false);
        }
        await WriteLineAsync("DATA", cancellationToken).ConfigureAwait(false);
        await _out.FlushAsync(cancellationToken).ConfigureAwait(false);

        // A refused MAIL FROM is every recipient's answer. The RCPTs were sent anyway: their replies are read.
        var mailReply = await ReadMailReplyAsync(cancellationToken).ConfigureAwait(false);
        var statuses = new DeliveryStatus[rcpts.Count];
        for (var i = 0; i < rcpts.Count; i++)
        {
            var rcptReply = await ReadFinalAsync("RCPT", cancellationToken).ConfigureAwait(false);
            statuses[i] = mailReply.IsSuccess ? rcptReply : mailReply;
        }
        var accepted = Accepted(statuses);
        var dataReply = await ReadReplyAsync(cancellationToken).ConfigureAwait(false);
        if (_protocolError)
        {
            return NotSent(statuses, accepted); // a MAIL or RCPT reply made no sense: this session is not used any further
        }
        if (accepted.Count == 0)
        {
            if (dataReply.Code == 354)
            {
                return statuses; // a store that opens DATA without recipients: Reusable stays false, the connection is dropped
            }
            await ResetAsync(cancellationToken).ConfigureAwait(false);
            return statuses;
        }
        return await SendDataAsync(statuses, accepted, dataReply, prefix, message, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Without PIPELINING, each command waits for its reply: no RCPT after a refused MAIL, no DATA when no
    /// recipient was accepted.</summary>
    private async Task<IReadOnlyList<DeliveryStatus>> SendStepwiseAsync(string mail, List<string> rcpts, ReadOnlyMemory<byte> prefix,
        ReadOnlySequence<byte> message, CancellationToken cancellationToken)
    {
        await CommandAsync(mail, cancellationToken).ConfigureAwait(false);
        // A refused MAIL FROM is every recipient's answer.
        var mailReply = await ReadMailReplyAsync(cancellationToken).ConfigureAwait(false);
        var statuses = new DeliveryStatus[rcpts.Count];
        for (var i = 0; i < rcpts.Count; i++)
        {
            if (mailReply.IsSuccess)
            {
                await CommandAsync(rcpts[i], cancellationToken).ConfigureAwait(false);
                statuses[i] = await ReadFinalAsync("RCPT", cancellationToken).ConfigureAwait(false);
            }
            else
            {
                statuses[i] = mailReply;
            }
        }
        var accepted = Accepted(statuses);
        if (accepted.Count == 0)
        {
            await ResetAsync(cancellationToken).ConfigureAwait(false);
            return statuses;
        }
        await CommandAsync("DATA", cancellationToken).ConfigureAwait(false);
        var dataReply = await ReadReplyAsync(cancellationToken).ConfigureAwait(false);
        if (_protocolError)
        {
            return NotSent(statuses, accepted); // a MAIL or RCPT reply made no sense: this session is not used any further
        }
        return await SendDataAsync(statuses, accepted, dataReply, prefix, message, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>No message was sent after a protocol error: a recipient the store accepted at RCPT has nothing delivered,
    /// so it gets the protocol error too (a 250 there would read as delivered to a caller that answers per recipient).</summary>
    private DeliveryStatus[] NotSent(DeliveryStatus[] statuses, List<int> accepted)
    {
        accepted.ForEach(i => statuses[i] = _protocolErrorStatus);
        return statuses;
    }

    private static List<int> Accepted(DeliveryStatus[] statuses) => [.. Enumerable.Range(0, statuses.Length).Where(i => statuses[i].IsSuccess)];

    /// <summary>Both DATA paths from the reply to DATA on, with at least one recipient accepted: a refused DATA is the
    /// accepted recipients' answer; after 354 the message, then one reply per accepted recipient (LMTP) or one for all.</summary>
    private async Task<IReadOnlyList<DeliveryStatus>> SendDataAsync(DeliveryStatus[] statuses, List<int> accepted, DeliveryStatus dataReply,
        ReadOnlyMemory<byte> prefix, ReadOnlySequence<byte> message, CancellationToken cancellationToken)
    {
        if (dataReply.Code != 354)
        {
            if (!(dataReply.IsTransient || dataReply.IsPermanent))
            {
                accepted.ForEach(i => statuses[i] = SmtpReply.ProtocolError("DATA", dataReply));
                return statuses; // Reusable stays false: the session is in an unknown state
            }
            accepted.ForEach(i => statuses[i] = dataReply);
            await ResetAsync(cancellationToken).ConfigureAwait(false);
            return statuses;
        }

        await WriteMessageAsync(prefix, message, cancellationToken).ConfigureAwait(false);
        var known = new DeliveryStatus?[statuses.Length];
        for (var i = 0; i < statuses.Length; i++)
        {
            known[i] = accepted.Contains(i) ? null : statuses[i];
        }
        if (_endpoint.Protocol == StoreProtocol.Lmtp)
        {
            foreach (var i in accepted)
            {
                statuses[i] = await ReadAfterMessageAsync(known, cancellationToken).ConfigureAwait(false);
                known[i] = statuses[i];
            }
        }
        else
        {
            var final = await ReadAfterMessageAsync(known, cancellationToken).ConfigureAwait(false);
            accepted.ForEach(i => statuses[i] = final);
        }
        Reusable = true;
        return statuses;
    }

    /// <summary>A reply to the message itself. Missing (closed, reset, timed out) or not final: the outcome is unknown.</summary>
    private async Task<DeliveryStatus> ReadAfterMessageAsync(IReadOnlyList<DeliveryStatus?> known, CancellationToken cancellationToken)
    {
        DeliveryStatus reply;
        try
        {
            reply = await ReadReplyAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (NetworkFailure.IsTransientOrTimeout(ex))
        {
            var why = ex is OperationCanceledException ? "no reply in time" : ex.Message;
            throw new StoreOutcomeUnknownException($"{_endpoint} gave no reply after the message was sent ({why})", known, ex);
        }
        if (!SmtpReply.IsFinal(reply))
        {
            throw new StoreOutcomeUnknownException(
                $"{_endpoint} answered the message with \"{reply.Code} {reply.Text}\", which is no final reply", known);
        }
        return reply;
    }

    /// <summary>A reply to MAIL or RCPT: its code must be 2xx, 4xx or 5xx (anything else: 451 4.5.0, connection not reused).</summary>
    private async Task<DeliveryStatus> ReadFinalAsync(string what, CancellationToken cancellationToken)
    {
        var reply = await ReadReplyAsync(cancellationToken).ConfigureAwait(false);
        if (SmtpReply.IsFinal(reply))
        {
            return reply;
        }
        _protocolError = true;
        _protocolErrorStatus = SmtpReply.ProtocolError(what, reply);
        return _protocolErrorStatus;
    }

    private bool _protocolError;

    /// <summary>The status of the reply that made no sense (when _protocolError).</summary>
    private DeliveryStatus _protocolErrorStatus = default!;

    /// <summary>True when an idle pooled connection shows input or an end of stream: the store closed it (or says
    /// something unasked); it must not carry a message.</summary>
    public bool LooksClosed()
    {
        try
        {
            return _client.Client.Poll(0, SelectMode.SelectRead) || !_client.Connected;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return true;
        }
    }

    /// <summary>One recipient over CHUNKING (RFC 3030): MAIL, RCPT and "BDAT n LAST" with the message bytes as
    /// they are (no dot-stuffing on either side) in one write, so one round trip per message instead of two.
    /// With one recipient each of the three commands has exactly one reply, also over LMTP (one reply per accepted
    /// recipient after BDAT LAST, or one for a refused BDAT), so replies cannot be miscounted; several recipients
    /// go through DATA. A large message waits for MAIL and RCPT to be accepted before its bytes go out.</summary>
    private async Task<DeliveryStatus> SendChunkedAsync(string mail, string rcptLine, ReadOnlyMemory<byte> prefix,
        ReadOnlySequence<byte> message, CancellationToken cancellationToken)
    {
        var length = prefix.Length + message.Length + 2; // SmtpServer removed the message's final CRLF
        var together = length <= PipelinedChunkLimit;
        await WriteLineAsync(mail, cancellationToken).ConfigureAwait(false);
        await WriteLineAsync(rcptLine, cancellationToken).ConfigureAwait(false);
        if (together)
        {
            await WriteChunkAsync(length, prefix, message, cancellationToken).ConfigureAwait(false);
        }
        await _out.FlushAsync(cancellationToken).ConfigureAwait(false);

        DeliveryStatus mailReply, rcptReply;
        if (together)
        {
            // The message went out with MAIL and RCPT: from here on a missing reply leaves the outcome unknown.
            try
            {
                mailReply = await ReadMailReplyAsync(cancellationToken).ConfigureAwait(false);
                rcptReply = await ReadFinalAsync("RCPT", cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (NetworkFailure.IsTransientOrTimeout(ex))
            {
                var why = ex is OperationCanceledException ? "no reply in time" : ex.Message;
                throw new StoreOutcomeUnknownException($"{_endpoint} gave no reply after the message was sent ({why})", [null], ex);
            }
        }
        else
        {
            mailReply = await ReadMailReplyAsync(cancellationToken).ConfigureAwait(false);
            rcptReply = await ReadFinalAsync("RCPT", cancellationToken).ConfigureAwait(false);
        }
        var refused = !mailReply.IsSuccess ? mailReply : !rcptReply.IsSuccess ? rcptReply : (DeliveryStatus?)null;
        if (!together)
        {
            if (refused is { } early)
            {
                await ResetAsync(cancellationToken).ConfigureAwait(false);
                return early;
            }
            await WriteChunkAsync(length, prefix, message, cancellationToken).ConfigureAwait(false);
            await _out.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        var final = await ReadAfterMessageAsync([null], cancellationToken).ConfigureAwait(false);
        var status = refused ?? final;
        if (_protocolError)
        {
            return status; // Reusable stays false
        }
        if (status.IsSuccess)
        {
            Reusable = true;
        }
        else
        {
            await ResetAsync(cancellationToken).ConfigureAwait(false); // RFC 3030: a failed BDAT ends the transaction
        }
        return status;
    }

    /// <summary>Messages up to this size go out in the same write as MAIL and RCPT; a refused recipient then
    /// costs at most this much sent for nothing.</summary>
    private const long PipelinedChunkLimit = 256 * 1024;

    private async Task WriteChunkAsync(long length, ReadOnlyMemory<byte> prefix, ReadOnlySequence<byte> message, CancellationToken cancellationToken)
    {
        await WriteLineAsync($"BDAT {length} LAST", cancellationToken).ConfigureAwait(false);
        await _out.WriteAsync(prefix, cancellationToken).ConfigureAwait(false);
        foreach (var segment in message)
        {
            await _out.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
        }
        await _out.WriteAsync(CrLf, cancellationToken).ConfigureAwait(false);
    }

    private static readonly string[] DsnMailParameters = ["RET", "ENVID"];

    private static readonly ReadOnlyMemory<byte> CrLf = "\r\n"u8.ToArray();

    /// <summary>The reply to MAIL FROM. "530 authentication required" is about Bridge's configuration, not this
    /// message: it throws (transient), so no mail is ever bounced for it.</summary>
    private async Task<DeliveryStatus> ReadMailReplyAsync(CancellationToken cancellationToken)
    {
        var reply = await ReadFinalAsync("MAIL", cancellationToken).ConfigureAwait(false);
        if (reply.Code == 530)
        {
            throw new SmtpConnectionException($"{_endpoint} requires authentication ({reply}): set Bridge:Legacy:Username and Password");
        }
        return reply;
    }

    private async Task ResetAsync(CancellationToken cancellationToken)
    {
        await CommandAsync("RSET", cancellationToken).ConfigureAwait(false);
        Reusable = (await ReadReplyAsync(cancellationToken).ConfigureAwait(false)).IsSuccess;
    }

    /// <summary>Writes the message with every line that begins with "." doubled, then CRLF "." CRLF.
    /// SmtpServer removed the final CRLF of the message; it goes back in front of the terminating dot.</summary>
    private async Task WriteMessageAsync(ReadOnlyMemory<byte> prefix, ReadOnlySequence<byte> message, CancellationToken cancellationToken)
    {
        var stuffer = new DotStuffer();
        await WriteStuffedAsync(stuffer, prefix, cancellationToken).ConfigureAwait(false);
        foreach (var segment in message)
        {
            await WriteStuffedAsync(stuffer, segment, cancellationToken).ConfigureAwait(false);
        }
        await _out.WriteAsync("\r\n.\r\n"u8.ToArray(), cancellationToken).ConfigureAwait(false);
        await _out.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task WriteStuffedAsync(DotStuffer stuffer, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        _pieces.Clear();
        stuffer.Stuff(bytes, _pieces);
        foreach (var piece in _pieces)
        {
            await _out.WriteAsync(piece, cancellationToken).ConfigureAwait(false);
        }
    }

    public async Task QuitAsync(CancellationToken cancellationToken)
    {
        try
        {
            await CommandAsync("QUIT", cancellationToken).ConfigureAwait(false);
            await ReadReplyAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (NetworkFailure.IsTransientOrTimeout(ex))
        {
            // the store is gone already: nothing to say goodbye to
        }
    }

    private async Task CommandAsync(string line, CancellationToken cancellationToken)
    {
        await WriteLineAsync(line, cancellationToken).ConfigureAwait(false);
        await _out.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private Task WriteLineAsync(string line, CancellationToken cancellationToken) =>
        _out.WriteAsync(Encoding.UTF8.GetBytes(line + "\r\n"), cancellationToken).AsTask();

    private async Task<DeliveryStatus> ReadReplyAsync(CancellationToken cancellationToken)
    {
        var reply = SmtpReply.Parse(await SmtpReply.ReadAsync(_reader, cancellationToken).ConfigureAwait(false));
        RepliesInTransaction++;
        return reply;
    }

    private async Task<DeliveryStatus> ExpectAsync(int code, string what, CancellationToken cancellationToken)
    {
        var reply = await ReadReplyAsync(cancellationToken).ConfigureAwait(false);
        if (reply.Code != code)
        {
            throw new SmtpConnectionException($"{_endpoint} answered {what} with {reply}");
        }
        return reply;
    }

    /// <summary>Closes the connection; never throws. What a failed write left in the send buffer is dropped: flushing
    /// it into the closed transport threw ObjectDisposedException, which escaped the pool's return of the connection
    /// (its slot was lost for good) and hid the store's failure from the retry rules.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await _stream.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or System.Security.Authentication.AuthenticationException)
        {
            // a TLS close_notify into a broken connection: the connection is gone either way
        }
        _client.Dispose();
        try
        {
            _out.Dispose();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            // the unsent bytes of a transaction that failed: nobody will read them
        }
    }
}
