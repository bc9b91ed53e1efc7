// Job: end `--serve` on SIGINT or SIGTERM without leaving its peers running. Registered before the first peer starts
// and disposed only after the last one is stopped, so that neither a signal while they start (Postfix and Dovecot
// run in sessions of their own: the default action would end the benchmark and leave them) nor a second Ctrl-C while
// they are being stopped ends the process before every peer is stopped. A signal during the start takes effect
// once all have started (each start is bounded), and then at once.
// Failure: none; SIGKILL cannot be caught (then the peers stay, as with any killed process).
using System.Runtime.InteropServices;

namespace Bridge.Bench;

internal sealed class StopSignal : IDisposable
{
    private readonly TaskCompletionSource _requested = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly PosixSignalRegistration _interrupt;
    private readonly PosixSignalRegistration _terminate;
    private volatile bool _serving;

    public StopSignal()
    {
        _interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        _terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
    }

    /// <summary>Waits for the first signal, from the moment everything is started (at once if one came meanwhile).</summary>
    public Task WaitAsync()
    {
        _serving = true;
        return _requested.Task;
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // the peers are stopped by the disposals that follow, not left to the default action
        if (_requested.TrySetResult())
        {
            Console.Error.WriteLine(_serving
                ? $"{context.Signal}: stopping every peer"
                : $"{context.Signal}: stopping every peer as soon as all have started");
        }
        else
        {
            Console.Error.WriteLine($"{context.Signal}: still stopping the peers");
        }
    }

    public void Dispose()
    {
        _interrupt.Dispose();
        _terminate.Dispose();
    }
}
