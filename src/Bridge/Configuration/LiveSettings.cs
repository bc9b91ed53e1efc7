// Job: keep the current SettingsSnapshot and replace it when appsettings.json changes or on SIGHUP, without
// a restart. An invalid edit is logged (each problem with its key) and ignored: the last valid snapshot
// stays in force. A change of Bridge:Mode is logged once.
// Failure: never throws after start; a reload problem is a log line.
using System.Runtime.InteropServices;
using Bridge.Common;
using Bridge.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace Bridge.Configuration;

public sealed partial class LiveSettings : IDisposable
{
    private readonly IConfiguration _configuration;
    private readonly IPasswdDatabase _passwd;
    private readonly ConfigurationFileErrors _fileErrors;
    private readonly ILogger _logger;
    private readonly IDisposable _changeSubscription;
    private readonly PosixSignalRegistration? _hangup;
    private volatile SettingsSnapshot _current;

    public LiveSettings(SettingsSnapshot initial, IConfiguration configuration, IPasswdDatabase passwd,
        ConfigurationFileErrors fileErrors, ILogger logger)
    {
        _current = initial;
        _configuration = configuration;
        _passwd = passwd;
        _fileErrors = fileErrors;
        _logger = logger;
        WatchAliases(initial);
        _changeSubscription = ChangeToken.OnChange(configuration.GetReloadToken, Reload);
        if (configuration is IConfigurationRoot root && !OperatingSystem.IsWindows())
        {
            _hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true; // SIGHUP means reload, not terminate
                LogSighup();
                root.Reload();
            });
        }
    }

    public SettingsSnapshot Current => _current;

    /// <summary>The problems of the snapshot's alias files are logged now and after every change of the files.</summary>
    private void WatchAliases(SettingsSnapshot snapshot)
    {
        if (snapshot.Routing.Aliases is not { } aliases)
        {
            return;
        }
        aliases.Report = LogAliasProblem;
        foreach (var problem in aliases.Problems)
        {
            LogAliasProblem(problem.ToString());
        }
        aliases.StartWatching();
    }

    private void Reload()
    {
        if (_fileErrors.Take() is { } fileError)
        {
            LogInvalidReload(fileError);
            return;
        }
        var (snapshot, errors) = SettingsSnapshot.Load(_configuration, _passwd, _current);
        if (snapshot is null)
        {
            LogInvalidReload(string.Join("; ", errors));
            return;
        }
        var previous = _current;
        if (!ReferenceEquals(snapshot.Routing.Aliases, previous.Routing.Aliases))
        {
            WatchAliases(snapshot);
            previous.Routing.Aliases?.StopWatching();
        }
        _current = snapshot;
        if (previous.Options.Mode != snapshot.Options.Mode)
        {
            LogModeChanged(previous.Options.Mode, snapshot.Options.Mode);
        }
        if (previous.Options.Listen.Address != snapshot.Options.Listen.Address ||
            previous.Options.Listen.Port != snapshot.Options.Listen.Port ||
            previous.Options.ServerName != snapshot.Options.ServerName ||
            previous.Options.MaxMessageBytes != snapshot.Options.MaxMessageBytes ||
            previous.Options.CommandTimeout != snapshot.Options.CommandTimeout ||
            previous.Options.MaxErrorsPerSession != snapshot.Options.MaxErrorsPerSession)
        {
            LogNeedsRestart();
        }
    }

    public void Dispose()
    {
        _current.Routing.Aliases?.StopWatching();
        _changeSubscription.Dispose();
        _hangup?.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "SIGHUP received: reloading configuration")]
    private partial void LogSighup();

    [LoggerMessage(Level = LogLevel.Error, Message = "Configuration change ignored, the last valid configuration stays in force: {Errors}")]
    private partial void LogInvalidReload(string errors);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Bridge:Mode changed from {Previous} to {Current}; applies from the next transaction")]
    private partial void LogModeChanged(BridgeMode previous, BridgeMode current);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Bridge:Listen, ServerName, MaxMessageBytes, CommandTimeout and MaxErrorsPerSession changes take effect after a restart")]
    private partial void LogNeedsRestart();

    [LoggerMessage(Level = LogLevel.Warning, Message = "aliases: {Problem}")]
    private partial void LogAliasProblem(string problem);
}
