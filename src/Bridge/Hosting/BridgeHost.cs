// Job: wire Bridge: configuration (appsettings.json in the working directory, environment, command line),
// logging (one line per event; journald format under systemd), the stages as services, and the bound listener.
// Failure: Build returns the problem that stops the daemon (invalid configuration naming its key, port not
// bindable naming the setting) as a StartupError carrying its exit code, instead of throwing.
using System.Net;
using Bridge.Collection;
using Bridge.Configuration;
using Bridge.Delivery;
using Bridge.Delivery.Dispatch;
using Bridge.Delivery.Bounces;
using Bridge.Delivery.Spool;
using Bridge.Delivery.Store;
using Bridge.Intake;
using Bridge.Native;
using Bridge.Observability;
using Bridge.Operations;
using Bridge.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;

using Bridge.Intake.Adapters;

namespace Bridge.Hosting;

public static class BridgeHost
{
    /// <summary>Builds a bound, ready-to-run host, or the reason it cannot run.</summary>
    public static (IHost? Host, StartupError? Error) Build(string[] args, string? contentRoot = null,
        Action<HostApplicationBuilder>? customize = null)
    {
        Libc.EnsureSupported();
        Libc.IgnoreFileSizeSignal();

        HostApplicationBuilder builder;
        try
        {
            builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
            {
                Args = args,
                ContentRootPath = contentRoot ?? ConfigurationLocation.Directory(),
            });
        }
        catch (InvalidDataException ex)
        {
            return (null, StartupError.InvalidConfiguration($"{ex.Message} {ex.InnerException?.Message}".TrimEnd()));
        }
        var fileErrors = new ConfigurationFileErrors();
        fileErrors.Watch(builder.Configuration);
        builder.Logging.ClearProviders();
        if (builder.Configuration.GetValue<bool>("Bridge:Logging:Json"))
        {
            builder.Logging.AddJsonConsole(o => o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fffK");
        }
        else
        {
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fff ";
                o.IncludeScopes = false;
            });
        }
        builder.Services.AddSystemd();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(90)); // systemd's TimeoutStopSec
        customize?.Invoke(builder);

        var passwd = new PasswdCache(new SystemPasswdDatabase(), TimeProvider.System);
        var (snapshot, errors) = SettingsSnapshot.Load(builder.Configuration, passwd);
        if (snapshot is null)
        {
            return (null, StartupError.InvalidConfiguration(string.Join("; ", errors)));
        }

        var journalDirectory = snapshot.Options.Spool.JournalDirectory;
        if (new AppendJournal(journalDirectory).Prepare() is { } journalProblem)
        {
            return (null, StartupError.Unavailable($"mailbridge: {journalProblem}"));
        }

        var listener = new BoundListener();
        try
        {
            listener.Bind(IPAddress.Parse(snapshot.Options.Listen.Address), snapshot.Options.Listen.Port);
            var lmtp = snapshot.Options.Lmtp;
            if (lmtp.Socket.Length > 0)
            {
                _ = BridgeOptionsValidator.TryParseMode(lmtp.SocketMode, out var mode); // validated with the configuration
                listener.BindLmtpSocket(lmtp.Socket, mode, Libc.GetGroupId(lmtp.SocketGroup) ?? Libc.Getegid());
            }
            if (lmtp.Port > 0)
            {
                listener.BindLmtpTcp(IPAddress.Parse(lmtp.Address), lmtp.Port);
            }
        }
        catch (ListenerBindException ex)
        {
            listener.Dispose();
            return (null, StartupError.Unavailable(ex.Message));
        }

        builder.Services.AddSingleton(listener);
        builder.Services.AddMetrics();
        builder.Services.AddSingleton<BridgeMetrics>();
        if (snapshot.Options.Metrics.PrometheusPort > 0)
        {
            // Loopback only: metrics name users and domains in their tags.
            var port = snapshot.Options.Metrics.PrometheusPort;
            builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
                .AddMeter(BridgeMetrics.MeterName)
                .AddPrometheusHttpListener(o =>
                {
                    o.Host = "127.0.0.1";
                    o.Port = port;
                }));
        }
        builder.Services.AddSingleton<IPasswdDatabase>(passwd);
        // The log category keeps its name from before LiveSettings moved to Configuration/: log lines are an interface.
        builder.Services.AddSingleton(sp => new LiveSettings(snapshot, builder.Configuration, passwd, fileErrors,
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Bridge.Hosting.LiveSettings")));
        builder.Services.AddSingleton<InProcessMailboxLocks>();
        builder.Services.AddSingleton(new AppendJournal(journalDirectory));
        builder.Services.AddSingleton(sp =>
        {
            var live = sp.GetRequiredService<LiveSettings>();
            return new SpoolDeliveryAgent(() => live.Current.Spool, sp.GetRequiredService<InProcessMailboxLocks>(),
                sp.GetRequiredService<AppendJournal>(), sp.GetRequiredService<ILogger<SpoolDeliveryAgent>>());
        });
        builder.Services.AddSingleton<StoreConnectionPool>();
        builder.Services.AddSingleton(sp =>
        {
            // One relay client for delivery and the collectors: one pool, one breaker. Its log category keeps the name it
            // had when the agent did the relaying: log lines are an interface.
            var live = sp.GetRequiredService<LiveSettings>();
            return new StoreClient(() => live.Current.Store, sp.GetRequiredService<StoreConnectionPool>(),
                sp.GetRequiredService<BridgeMetrics>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("Bridge.Delivery.Store.StoreDeliveryAgent"));
        });
        builder.Services.AddSingleton<StoreDeliveryAgent>();
        builder.Services.AddSingleton(sp =>
        {
            var live = sp.GetRequiredService<LiveSettings>();
            return new BounceSender(() => live.Current.Bounces, sp.GetRequiredService<ILogger<BounceSender>>());
        });
        builder.Services.AddSingleton<DeliveryDispatcher>();
        builder.Services.AddSingleton<SessionGate>();
        builder.Services.AddSingleton<RecipientFilter>();
        builder.Services.AddSingleton<MessageIntake>();
        builder.Services.AddSingleton<MailboxFilterAdapter>();
        builder.Services.AddSingleton<MessageStoreAdapter>();
        builder.Services.AddHostedService<SpoolRecoveryService>(); // before the listener: hosted services start in order
        // The collectors' log categories keep the names they had before they moved to Collection/.
        builder.Services.AddHostedService(sp => new FallbackCollector(sp.GetRequiredService<LiveSettings>(), sp.GetRequiredService<StoreClient>(),
            sp.GetRequiredService<InProcessMailboxLocks>(), sp.GetRequiredService<AppendJournal>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Bridge.Operations.FallbackCollector")));
        builder.Services.AddHostedService(sp => new LoginCollectService(sp.GetRequiredService<LiveSettings>(), sp.GetRequiredService<StoreClient>(),
            sp.GetRequiredService<InProcessMailboxLocks>(), sp.GetRequiredService<AppendJournal>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Bridge.Operations.LoginCollectService")));
        builder.Services.AddHostedService<SmtpListenerService>();
        return (builder.Build(), null);
    }
}
