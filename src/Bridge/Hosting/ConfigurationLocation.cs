// Job: where Bridge's appsettings.json is read from, for the daemon and every verb alike: the working directory
// when it holds one (a checkout, the tests, `sudo dotnet run`), else /etc/bridge (the package's conffile and
// deploy/install.sh), so that `mailbridge check` typed in any directory checks the installed configuration.
// Failure: none; with neither file, the working directory (defaults, environment and command line still apply).
namespace Bridge.Hosting;

public static class ConfigurationLocation
{
    public const string FileName = "appsettings.json";

    public const string SystemDirectory = "/etc/bridge";

    public static string Directory()
    {
        var here = System.IO.Directory.GetCurrentDirectory();
        if (File.Exists(Path.Combine(here, FileName)) || !File.Exists(Path.Combine(SystemDirectory, FileName)))
        {
            return here;
        }
        return SystemDirectory;
    }
}
