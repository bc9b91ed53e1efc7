// Job: catch errors of configuration files (e.g. appsettings.json with broken JSON) while reloading. .NET would
// throw them on its file-watcher thread and, worse, continue with the file's values removed; instead the error
// is recorded here, and LiveSettings keeps the last valid configuration for that reload.
// Failure: none; it records.
using Microsoft.Extensions.Configuration;

namespace Bridge.Configuration;

public sealed class ConfigurationFileErrors
{
    private string? _pending;

    /// <summary>Makes every file source of <paramref name="configuration"/> report load errors here instead of throwing.</summary>
    public void Watch(IConfigurationBuilder configuration)
    {
        foreach (var source in configuration.Sources.OfType<FileConfigurationSource>())
        {
            source.OnLoadException = context =>
            {
                Interlocked.Exchange(ref _pending, $"{context.Exception.Message} {context.Exception.InnerException?.Message}".Trim());
                context.Ignore = true;
            };
        }
    }

    /// <summary>The error of the latest failed file load since the last call, if any.</summary>
    public string? Take() => Interlocked.Exchange(ref _pending, null);
}
