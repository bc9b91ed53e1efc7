// Job: the bridge executable: run the daemon (default). Exit codes follow sysexits: 78 configuration, 69 unavailable.
// Failure: a configuration or bind problem prints one line to stderr and exits non-zero, without a stack trace.
using Bridge.Hosting;
using Microsoft.Extensions.Hosting;

var (host, error) = BridgeHost.Build(args);
if (host is null)
{
    await Console.Error.WriteLineAsync(error);
    return error!.Contains("invalid configuration", StringComparison.Ordinal) ? 78 : 69;
}
using (host)
{
    await host.RunAsync();
}
return 0;
