// Job: the output side of a session's socket, where SmtpServer's own reply texts are made precise:
// - ", N retry(ies) remaining." (appended to every reply a filter raised) is removed; at "0 remaining"
//   SmtpServer drops the session after the reply, so "421 4.7.0 Too many errors" is added, as Postfix says it;
// - its state machine's "501 expected ..." (a command out of sequence) becomes "503 5.5.1";
// - the library's fixed replies get enhanced status codes (RFC 2034), e.g. "250 Ok" -> "250 2.0.0 Ok";
// - its "502 Unrecognized command" (also given for a malformed address) becomes "500 5.5.2";
// - its idle timeout "221 Timeout ..." (a 2xx!) becomes "421 4.4.2", its cancellation "421 4.3.2".
// - "550 mailbox unavailable" becomes the reply RecipientFilter chose when it declined a recipient without an error
//   (SessionWire.MailboxUnavailableReply, e.g. 452 4.5.3 too many recipients);
// - LMTP: the reply to the message becomes one reply per recipient (SessionWire.RecipientReplies), and the NOOP that
//   stood in for a refused HELO/EHLO gets its refusal (SessionWire.NextReplyOverride; see LmtpDialect);
// - it tells the input side (InputGuardStream) whether the last reply was 354, i.e. message bytes follow.
// Bridge's own replies already carry enhanced codes and pass unchanged, as does every other byte. What each library
// text becomes is written in Intake/Replies; the library's texts themselves are pinned by LibraryReplyTextTests.
// Replies are held until the session would wait for its client (InputGuardStream calls SendPendingAsync before it
// reads the socket; SessionPipe sends what is left before it closes), so the replies to a pipelined group (MAIL,
// RCPT, DATA) leave in one segment, as RFC 2920 section 3.1 allows and Postfix's smtpd does; beyond 4 KiB they go at
// once. Corrects: SmtpServer flushes every reply on its own (one send and one client wake-up each).
// Failure: write errors of the socket propagate as IOException from SendPendingAsync, as they would without this stream.
using System.Text;
using System.Text.RegularExpressions;

namespace Bridge.Intake.Adapters;

internal sealed partial class ReplyTextStream(Stream inner, Action<bool> replyWritten, SessionWire? session = null) : Stream
{
    [GeneratedRegex(RetrySuffixPattern, RegexOptions.CultureInvariant)]
    private static partial Regex RetrySuffix();

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>Beyond this many bytes of held replies they are sent without waiting (a client that pipelines
    /// hundreds of commands gets its replies as they come, not all at the end).</summary>
    internal const int HoldLimit = 4096;

    private readonly Lock _gate = new();
    private byte[] _held = new byte[512];
    private int _heldLength;

    /// <summary>Bytes of replies written but not yet sent.</summary>
    internal int Held
    {
        get
        {
            lock (_gate)
            {
                return _heldLength;
            }
        }
    }

    public override void Write(byte[] buffer, int offset, int count)
    {
        if (Hold(buffer.AsMemory(offset, count)))
        {
            SendPending();
        }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (Hold(buffer))
        {
            await SendPendingAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Cleans a reply and holds it; true when what is held should go now.</summary>
    private bool Hold(ReadOnlyMemory<byte> buffer)
    {
        replyWritten(OpensData(buffer.Span));
        var clean = Clean(buffer, session).Span;
        lock (_gate)
        {
            if (_heldLength + clean.Length > _held.Length)
            {
                Array.Resize(ref _held, Math.Max(_held.Length * 2, _heldLength + clean.Length));
            }
            clean.CopyTo(_held.AsSpan(_heldLength));
            _heldLength += clean.Length;
            return _heldLength >= HoldLimit;
        }
    }

    /// <summary>Takes what is held (null when nothing is).</summary>
    private byte[]? TakeHeld()
    {
        lock (_gate)
        {
            if (_heldLength == 0)
            {
                return null;
            }
            var bytes = _held.AsSpan(0, _heldLength).ToArray();
            _heldLength = 0;
            return bytes;
        }
    }

    /// <summary>Sends the held replies: before the session waits for its client, and when they exceed HoldLimit.</summary>
    /// <remarks>Not cancellable: the held bytes are taken first, and a stop must not drop a 250 for mail already written.</remarks>
    public async ValueTask SendPendingAsync()
    {
        if (TakeHeld() is not { } bytes)
        {
            return;
        }
        try
        {
            await inner.WriteAsync(bytes, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            session?.State.DeliveryAnswered();
        }
    }

    /// <summary>The same, blocking: for the end of a session, just before its socket is closed.</summary>
    public void SendPending()
    {
        if (TakeHeld() is not { } bytes)
        {
            return;
        }
        try
        {
            inner.Write(bytes);
        }
        finally
        {
            session?.State.DeliveryAnswered();
        }
    }

    /// <summary>True when the chunk's last reply is 354: message bytes follow, not commands.</summary>
    private static bool OpensData(ReadOnlySpan<byte> chunk)
    {
        var end = chunk.Length;
        while (end > 0 && chunk[end - 1] is (byte)'\r' or (byte)'\n')
        {
            end--;
        }
        var start = chunk[..end].LastIndexOf((byte)'\n') + 1;
        return chunk[start..end].StartsWith("354"u8);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>SmtpServer flushes after every reply: held replies stay held until the session waits for input.</summary>
    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>The library's fixed reply texts, word for word (its typos included), and what each becomes.</summary>
    internal static readonly Dictionary<string, string> FixedReplies = new(StringComparer.Ordinal)
    {
        ["250 Ok"] = Replies.Ok,
        ["221 bye"] = Replies.Bye,
        ["221 Timeout while waiting for input."] = Replies.Timeout,
        ["221 The session has be cancelled."] = Replies.Cancelled,
        ["501 syntax error"] = Replies.SyntaxError,
        ["501 "] = Replies.SyntaxError,
        ["501 missing the TO:"] = Replies.RcptSyntax,
        ["501 missing the FROM:"] = Replies.MailSyntax,
        // The library's parser reports a malformed MAIL/RCPT address as an unknown command (502); RFC 5321 says 500.
        ["502 Unrecognized command"] = Replies.Unrecognized,
        ["503 bad sequence of commands"] = Replies.BadSequence,
        ["550 mailbox unavailable"] = Replies.MailboxUnavailable,
        ["553 mailbox name not allowed"] = Replies.MailboxNameNotAllowed,
        ["552 size limit exceeded"] = Replies.SizeExceeded,
        ["552 message size exceeds fixed maximium message size"] = Replies.SizeExceeded,
        ["554 no valid recipients given"] = Replies.NoValidRecipients,
        ["554 "] = Replies.TransactionFailed,
    };

    /// <summary>The library's start of a command refused out of sequence ("501 expected MAIL/RCPT").</summary>
    internal const string OutOfSequencePrefix = "501 expected ";

    /// <summary>What the library appends to a reply raised as an exception (N: errors left before it drops the session).</summary>
    internal const string RetrySuffixPattern = @", (\d+) retry\(ies\) remaining\.$";

    /// <summary>Reply chunks are whole lines (SmtpServer writes a line into one contiguous span, then flushes).</summary>
    internal static ReadOnlyMemory<byte> Clean(ReadOnlyMemory<byte> chunk, SessionWire? session = null)
    {
        var text = Encoding.Latin1.GetString(chunk.Span);
        var lines = text.Split("\r\n");
        var changed = false;
        for (var i = 0; i < lines.Length; i++)
        {
            var suffix = RetrySuffix().Match(lines[i]);
            var line = suffix.Success ? lines[i][..suffix.Index] : lines[i];
            if (line.Length == 0)
            {
                continue;
            }
            if (session?.RecipientReplies is { } perRecipient && !line.StartsWith("354", StringComparison.Ordinal))
            {
                session.RecipientReplies = null; // set by MessageIntake just before SmtpServer writes the message's reply
                line = perRecipient;
            }
            else if (line.StartsWith("250", StringComparison.Ordinal) && session?.NextReplyOverride is { } overridden)
            {
                session.NextReplyOverride = null;
                line = overridden;
            }
            else if (line == "550 mailbox unavailable" && session?.MailboxUnavailableReply is { } replacement)
            {
                session.MailboxUnavailableReply = null;
                line = replacement;
            }
            else if (FixedReplies.TryGetValue(line, out var fixedReply))
            {
                line = fixedReply;
            }
            else if (line.StartsWith(OutOfSequencePrefix, StringComparison.Ordinal))
            {
                // SmtpServer's state machine refusing a command in the wrong place: RFC 5321 calls that 503.
                line = Replies.OutOfSequence + line[4..];
                if (session?.State.Lmtp == true)
                {
                    line = line.Replace("HELO/EHLO", "LHLO", StringComparison.Ordinal); // what an LMTP client may send
                }
            }
            if (suffix.Success && suffix.Groups[1].Value == "0")
            {
                line += "\r\n" + Replies.TooManyErrors; // SmtpServer ends the session after this reply without saying so
            }
            changed |= line != lines[i];
            lines[i] = line;
        }
        return changed ? Encoding.Latin1.GetBytes(string.Join("\r\n", lines)) : chunk;
    }
}
