// Job: the one answer to "is this exception a relay that could not be reached or dropped the conversation?" (socket
// and stream errors, a broken SMTP conversation, a failed TLS handshake, a Polly attempt timeout), used by the
// store's retries, the connection pool, drain, probe and check alike.
// Failure: none; a predicate.
using System.Net.Sockets;
using System.Security.Authentication;
using Polly.Timeout;

namespace Bridge.Delivery.Smtp;

public static class NetworkFailure
{
    /// <summary>A failure worth another attempt later: the relay, not the message, was the problem.</summary>
    public static bool IsTransient(Exception exception) =>
        exception is SocketException or IOException or SmtpConnectionException or AuthenticationException or TimeoutRejectedException;

    /// <summary>IsTransient, or a wait that ended without an answer (a timeout's cancellation).</summary>
    public static bool IsTransientOrTimeout(Exception exception) => IsTransient(exception) || exception is OperationCanceledException;
}
