// Job: run SmtpServer on the pre-bound socket with Bridge's filter, message store (the adapters in front of
// RecipientFilter and MessageIntake) and command factory.
// SessionTimeout is not used as a cap (an MTA sends many messages over one connection); the idle limit,
// Bridge:CommandTimeout (RFC 5321: five minutes), belongs to IdleLimit (in InputGuardStream), on every read. SmtpServer's own
// command timeout is only a backstop a little later: at the same moment the two raced, and the client got
// whichever 421 was written first.
// Failure: a faulted session is logged; the server keeps accepting. Stop is graceful (see StopAsync).
using Bridge.Common;
using Bridge.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SmtpServer;
using SmtpServer.ComponentModel;

namespace Bridge.Intake.Adapters;

internal sealed partial class SmtpListenerService(
    BoundListener listener, LiveSettings settings, SessionGate gate, MailboxFilterAdapter filter, MessageStoreAdapter intake,
    ILoggerFactory loggers) : IHostedService
{
    // The category keeps the name it had before the adapters moved into Intake/Adapters: log lines are an interface.
    private readonly ILogger _logger = loggers.CreateLogger("Bridge.Intake.SmtpListenerService");

    private static readonly TimeSpan CommandWaitBackstop = TimeSpan.FromSeconds(10);

    private SmtpServer.SmtpServer? _server;
    private Task? _running;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var options = settings.Current.Options;
        var endpoint = listener.LocalEndpoint ?? throw new InvalidOperationException("listener is not bound");
        var builder = new SmtpServerOptionsBuilder()
            .ServerName(options.ServerName)
            .MaxMessageSize(options.MaxMessageBytes, MaxMessageSizeHandling.Ignore)
            .MaxRetryCount(options.MaxErrorsPerSession)
            .CommandWaitTimeout(options.CommandTimeout + CommandWaitBackstop)
            .CustomSmtpGreeting(context => Replies.Greeting(context.ServerOptions.ServerName, SessionWire.Of(context).State.Lmtp));
        foreach (var bound in listener.Endpoints)
        {
            builder = builder.Endpoint(e => e.Endpoint(bound).SessionTimeout(TimeSpan.FromDays(1)));
        }
        var serverOptions = builder.Build();

        listener.Gate = gate;
        var services = new ServiceProvider();
        services.Add(listener);
        services.Add(new BridgeCommandFactory());
        services.Add(filter);
        services.Add(intake);

        _server = new SmtpServer.SmtpServer(serverOptions, services);
        _server.SessionCreated += (_, args) => SessionWire.Of(args.Context); // attached by the listener already
        _server.SessionFaulted += (_, args) => LogSessionFaulted(args.Exception.GetType().Name, args.Exception.Message);
        _running = _server.StartAsync(CancellationToken.None);
        LogListening(endpoint, options.Mode, options.ServerName);
        foreach (var lmtp in listener.Descriptions.Where(d => d.StartsWith("lmtp", StringComparison.Ordinal)))
        {
            LogListeningLmtp(lmtp);
        }
        return Task.CompletedTask;
    }

    /// <summary>Graceful stop: no new connections, new transactions get 421 4.3.2, messages being delivered
    /// finish (until the host's ShutdownTimeout), then the remaining idle sessions are closed with 421.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is null || _running is null)
        {
            return;
        }
        gate.BeginDrain();
        listener.StopAccepting();
        LogStopping(gate.InFlight);
        while (gate.InFlight > 0 && !cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
        }
        _server.Shutdown();
        await Task.WhenAny(_running, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None)).ConfigureAwait(false);
        LogStopped();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopping: no new connections or transactions; waiting for {InFlight} message(s) being delivered")]
    private partial void LogStopping(int inFlight);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopped")]
    private partial void LogStopped();

    [LoggerMessage(Level = LogLevel.Information, Message = "Bridge listening on {Endpoint}, mode {Mode}, server name {ServerName}")]
    private partial void LogListening(System.Net.IPEndPoint endpoint, Bridge.Common.BridgeMode mode, string serverName);

    [LoggerMessage(Level = LogLevel.Information, Message = "Bridge listening for LMTP on {Endpoint}")]
    private partial void LogListeningLmtp(string endpoint);

    [LoggerMessage(Level = LogLevel.Warning, Message = "SMTP session ended abnormally: {Kind}: {Message}")]
    private partial void LogSessionFaulted(string kind, string message);
}
