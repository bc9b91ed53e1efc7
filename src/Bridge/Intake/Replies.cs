// Job: the one home of every reply text Intake composes for its SMTP and LMTP clients (what the session logic
// decides, what the input guard says before it closes, and what the library's own texts become, ReplyTextStream's
// table): one place to read what a session can be told, and to change it. A delivery's outcome is a DeliveryStatus made
// by the stage that decides it (Common/DeliveryStatus's factories, Routing's refusals, SpoolResult.ToStatus, the store's
// own reply, StoreClient's 451 4.4.1, DeliveryResult.Compose); Intake writes it as it is.
// A store's or a file's own text reaches a client only through SmtpReplies (an enhanced code, clean ASCII).
// Failure: none; constants and pure functions.
using System.Net;
using Bridge.Common;

namespace Bridge.Intake;

internal static class Replies
{
    // At accept (SessionGate): the reply line, then the connection is closed.
    public static string NotAllowed(IPAddress client) => $"554 5.7.1 {client} is not allowed to connect (Bridge:AllowedClients)";

    public const string TooManyConnections = "421 4.7.0 Too many connections, try again later";

    /// <summary>The greeting; "LMTP" on an LMTP socket, else "ESMTP".</summary>
    public static string Greeting(string serverName, bool lmtp) => $"220 {serverName} {(lmtp ? "LMTP" : "ESMTP")} Bridge";

    // The input guard, past a limit: written, then the connection is closed.
    public const string TooSlowForSlot = "421 4.4.2 Too slow while every connection slot is in use, closing connection";
    public const string IdleTimeout = "421 4.4.2 Idle timeout, closing connection";
    public const string LineTooLong = "500 5.5.2 Line too long, closing connection";
    public const string StreamTooLong = "552 5.3.4 Message size exceeds fixed limit, closing connection";
    public const string BudgetSpent = "452 4.3.1 Too much mail in transit (Bridge:MaxBytesInFlight), try again later";

    // The parameters and address bytes of one MAIL/RCPT line (Adapters/CommandScreen; RFC 1870, 3461, 5321, 6152, 6531).
    public static DeliveryStatus UnreadableAddress(string enhanced, string role, bool smtputf8) => new(553, enhanced, smtputf8
        ? $"Bad {role} address syntax: it is not valid UTF-8 (RFC 6531)"
        : $"Bad {role} address syntax: 8-bit characters need SMTPUTF8 (RFC 6531)");

    public static DeliveryStatus DuplicateParameter(string verb, string keyword) => ParameterSyntax($"Duplicate {verb} parameter {keyword}");

    public static DeliveryStatus BadSize => ParameterSyntax("Bad SIZE parameter: 1 to 20 digits expected (RFC 1870)");

    public static DeliveryStatus BadBody => ParameterSyntax("Bad BODY parameter: 7BIT or 8BITMIME expected (RFC 6152)");

    public static DeliveryStatus Smtputf8WithValue => ParameterSyntax("SMTPUTF8 takes no value (RFC 6531)");

    public static DeliveryStatus BadRet => ParameterSyntax("Bad RET parameter: FULL or HDRS expected (RFC 3461)");

    public static DeliveryStatus BadEnvid => ParameterSyntax("Bad ENVID parameter: up to 100 characters of xtext expected (RFC 3461)");

    public static DeliveryStatus BadNotify => ParameterSyntax("Bad NOTIFY parameter: NEVER, or SUCCESS, FAILURE, DELAY separated by commas (RFC 3461)");

    public static DeliveryStatus BadOrcpt => ParameterSyntax("Bad ORCPT parameter: addr-type;xtext expected, e.g. rfc822;user@example.org (RFC 3461)");

    public static DeliveryStatus ParameterTooLong(int max) => ParameterSyntax($"Parameter longer than {max} bytes");

    public static DeliveryStatus BadKeyword => ParameterSyntax("Bad parameter keyword");

    public static DeliveryStatus BadValue(string keyword) => ParameterSyntax($"Bad value of parameter {keyword}");

    public static DeliveryStatus BinaryMime => Unsupported("BODY=BINARYMIME (it needs CHUNKING, which is not offered)");

    public static DeliveryStatus UnsupportedParameter(string verb, string keyword) => Unsupported($"{verb} parameter {keyword}");

    private static DeliveryStatus ParameterSyntax(string text) => new(501, "5.5.4", text);

    private static DeliveryStatus Unsupported(string what) => new(555, "5.5.4", $"Unsupported {what}");

    // MAIL and RCPT (RecipientFilter).
    public static DeliveryStatus ShuttingDown => new(421, "4.3.2", "Service shutting down, try again later");

    public static DeliveryStatus TooManyRecipients(int max) => new(452, "4.5.3", $"Too many recipients (at most {max} per message)");

    public static DeliveryStatus UnwritableAddress(string enhanced, string role) =>
        new(553, enhanced, $"Bad {role} address syntax: a control character in the local part");

    // The message (MessageIntake; TooBig also for a MAIL's SIZE, CommandScreen).
    public static DeliveryStatus TooBig(long max) => new(552, "5.3.4", $"Message size exceeds fixed limit of {max} bytes");

    public static DeliveryStatus BareLineFeed => new(550, "5.5.2", "Bare <LF> received: SMTP requires <CR><LF> line ends");

    public static DeliveryStatus Loop(int received) => new(554, "5.4.6", $"Too many Received headers ({received}): mail forwarding loop");

    public static DeliveryStatus NotRoutedAgain(string address) => DeliveryStatus.Deferred($"<{address}> could not be routed again");

    public static DeliveryStatus DeliveryTimedOut(TimeSpan limit) => new(451, "4.3.0",
        $"Delivery did not finish within Bridge:DeliveryTimeout ({limit.TotalSeconds:0} s), try again later");

    public static DeliveryStatus Unexpected => DeliveryStatus.LocalError("unexpected error, see the Bridge log");

    /// <summary>What a reply that is not final (not 2xx/4xx/5xx) becomes.</summary>
    public static DeliveryStatus NotFinal(DeliveryStatus status) => new(451, "4.3.0", $"Local error: an unexpected reply {status.Code} {status.Text}");

    // LMTP (LmtpDialect): HELO and EHLO are refused.
    public const string UseLhlo = "500 5.5.1 This is LMTP (RFC 2033): say LHLO, not HELO or EHLO";

    // What the library's own texts become (ReplyTextStream, which recognises them).
    public const string TooManyErrors = "421 4.7.0 Too many errors, closing connection";

    /// <summary>The library's "501 expected ..." (a command out of sequence) becomes this followed by what it expected.</summary>
    public const string OutOfSequence = "503 5.5.1 Bad sequence of commands, ";

    public const string Ok = "250 2.0.0 Ok";
    public const string Bye = "221 2.0.0 Bye";
    public const string Timeout = "421 4.4.2 Timeout while waiting for input";
    public const string Cancelled = "421 4.3.2 Service shutting down";
    public const string SyntaxError = "501 5.5.2 Syntax error";
    public const string RcptSyntax = "501 5.5.4 Syntax: RCPT TO:<address>";
    public const string MailSyntax = "501 5.5.4 Syntax: MAIL FROM:<address>";
    public const string Unrecognized = "500 5.5.2 Syntax error: command unrecognized or address malformed";
    public const string BadSequence = "503 5.5.1 Bad sequence of commands";
    public const string MailboxUnavailable = "550 5.1.1 Mailbox unavailable";
    public const string MailboxNameNotAllowed = "553 5.1.3 Mailbox name not allowed";
    public const string SizeExceeded = "552 5.3.4 Message size exceeds fixed limit";
    public const string NoValidRecipients = "554 5.5.1 No valid recipients";
    public const string TransactionFailed = "554 5.3.0 Transaction failed";
}
