// Job: wait for something a real peer does in its own time (Postfix delivering its queue, a file watcher
// reloading), polling every 250 ms.
// Failure: a condition not reached in time fails the test, with the context the caller gives (e.g. a peer's log).
namespace Bridge.Tests.Support;

public static class Eventually
{
    public static async Task WaitAsync(Func<Task<bool>> condition, int seconds = 30, Func<string>? context = null)
    {
        for (var i = 0; i < seconds * 4; i++)
        {
            if (await condition())
            {
                return;
            }
            await Task.Delay(250);
        }
        Assert.Fail($"condition not reached within {seconds} s. {context?.Invoke()}");
    }

    public static Task WaitAsync(Func<bool> condition, int seconds = 30, Func<string>? context = null) =>
        WaitAsync(() => Task.FromResult(condition()), seconds, context);
}
