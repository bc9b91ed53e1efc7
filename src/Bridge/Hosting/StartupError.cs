// Job: why the daemon cannot start, with the exit code that says so to systemd and scripts (sysexits.h):
// 78 EX_CONFIG for a configuration that does not validate, 69 EX_UNAVAILABLE for a machine that cannot give
// Bridge what it needs (a port it cannot bind, a journal directory it cannot create).
// Failure: none; a value.
namespace Bridge.Hosting;

public sealed record StartupError(int ExitCode, string Message)
{
    public const int ConfigExitCode = 78;

    public const int UnavailableExitCode = 69;

    public static StartupError InvalidConfiguration(string problems) => new(ConfigExitCode, $"mailbridge: invalid configuration: {problems}");

    public static StartupError Unavailable(string message) => new(UnavailableExitCode, message);

    public override string ToString() => Message;
}
