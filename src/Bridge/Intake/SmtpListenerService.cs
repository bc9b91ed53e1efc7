// Job: run SmtpServer on the pre-bound socket with Bridge's filter, message store and command factory.
// SessionTimeout is not used as a cap (an MTA sends many messages over one connection); the per-command
// idle timeout is RFC 5321's five minutes.
// Failure: a faulted session is logged; the server keeps accepting. Stop cancels the listener.
using Bridge.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SmtpServer;
using SmtpServer.ComponentModel;

namespace Bridge.Intake;

internal sealed partial class SmtpListenerService(
    BoundListener listener, LiveSettings settings, RecipientFilter filter, MessageIntake intake,
    ILogger<SmtpListenerService> logger) : IHostedService
{
    private SmtpServer.SmtpServer? _server;
    private Task? _running;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var options = settings.Current.Options;
        var endpoint = listener.LocalEndpoint ?? throw new InvalidOperationException("listener is not bound");
        var serverOptions = new SmtpServerOptionsBuilder()
            .ServerName(options.ServerName)
            .Endpoint(e => e.Endpoint(endpoint).SessionTimeout(TimeSpan.FromDays(1)))
            .MaxMessageSize(options.MaxMessageBytes, MaxMessageSizeHandling.Ignore)
            .MaxRetryCount(100)
            .CommandWaitTimeout(TimeSpan.FromMinutes(5))
            .CustomSmtpGreeting(context => $"220 {context.ServerOptions.ServerName} ESMTP Bridge")
            .Build();

        var services = new ServiceProvider();
        services.Add(listener);
        services.Add(new BridgeCommandFactory());
        services.Add(filter);
        services.Add(intake);

        _server = new SmtpServer.SmtpServer(serverOptions, services);
        _server.SessionCreated += (_, args) => SessionState.Attach(args.Context);
        _server.SessionFaulted += (_, args) => LogSessionFaulted(args.Exception.GetType().Name, args.Exception.Message);
        _running = _server.StartAsync(CancellationToken.None);
        LogListening(endpoint, options.Mode, options.ServerName);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_server is null || _running is null)
        {
            return;
        }
        _server.Shutdown();
        await Task.WhenAny(_running, Task.Delay(Timeout.Infinite, cancellationToken)).ConfigureAwait(false);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Bridge listening on {Endpoint}, mode {Mode}, server name {ServerName}")]
    private partial void LogListening(System.Net.IPEndPoint endpoint, Bridge.Routing.BridgeMode mode, string serverName);

    [LoggerMessage(Level = LogLevel.Warning, Message = "SMTP session ended abnormally: {Kind}: {Message}")]
    private partial void LogSessionFaulted(string kind, string message);
}
