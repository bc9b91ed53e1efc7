// Job: the standard Legacy-mode setup: a real Dovecot as the mail store (LMTP, Maildir, IMAP to read back)
// and a Bridge relaying to it, with the same users as SpoolScenario. The store can be started late (to
// test a store that is down) and stopped/restarted on the same port.
// Failure: any missing peer or start problem fails the test with its cause.
namespace Bridge.Tests.Support;

public sealed class LegacyScenario : IAsyncDisposable
{
    private LegacyScenario(SpoolScenario bridge, int lmtpPort, DovecotServer? store)
    {
        Bridge = bridge;
        LmtpPort = lmtpPort;
        Store = store;
    }

    public SpoolScenario Bridge { get; }

    public int LmtpPort { get; }

    public DovecotServer? Store { get; private set; }

    public int Port => Bridge.Port;

    /// <param name="storeUp">False: the store's port is reserved but nothing listens until StartStoreAsync.</param>
    public static async Task<LegacyScenario> StartAsync(bool storeUp = true, params string[] settings)
    {
        var lmtpPort = FreePort.Next();
        DovecotServer? store = storeUp ? await DovecotServer.StartStoreAsync(lmtpPort, TestAccounts.Alice, TestAccounts.Bob) : null;
        try
        {
            var bridge = await SpoolScenario.StartAsync([
                "Bridge:Mode=Legacy", "Bridge:Legacy:Host=127.0.0.1", $"Bridge:Legacy:Port={lmtpPort}", "Bridge:Legacy:Protocol=Lmtp",
                .. settings]);
            return new LegacyScenario(bridge, lmtpPort, store);
        }
        catch
        {
            if (store is not null)
            {
                await store.DisposeAsync();
            }
            throw;
        }
    }

    public async Task StartStoreAsync()
    {
        if (Store is null)
        {
            Store = await DovecotServer.StartStoreAsync(LmtpPort, TestAccounts.Alice, TestAccounts.Bob);
        }
        else
        {
            await Store.StartAgainAsync();
        }
    }

    public Task<IReadOnlyList<byte[]>> InboxAsync(string user) =>
        (Store ?? throw new InvalidOperationException("the store was never started")).FetchInboxAsync(user);

    public async ValueTask DisposeAsync()
    {
        await Bridge.DisposeAsync();
        if (Store is not null)
        {
            await Store.DisposeAsync();
        }
    }
}
