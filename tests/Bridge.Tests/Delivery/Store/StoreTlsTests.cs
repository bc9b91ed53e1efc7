using System.Text;
using Bridge.Tests.Support;

namespace Bridge.Tests.Delivery.Store;

/// <summary>Legacy mode over TLS to a real Dovecot with a self-signed certificate.</summary>
public class StoreTlsTests
{
    private const string Alice = "bridgetest1@" + SpoolScenario.Domain;

    [Theory]
    [InlineData("StartTls")]
    [InlineData("Implicit")]
    public async Task The_store_is_reached_over_tls_when_its_certificate_is_trusted(string tls)
    {
        await using var store = await DovecotServer.StartTlsStoreAsync(TestAccounts.Alice);
        var port = tls == "Implicit" ? store.LmtpsPort : store.LmtpPort;
        await using var s = await SpoolScenario.StartAsync("Bridge:Mode=Legacy", "Bridge:Legacy:Host=127.0.0.1",
            $"Bridge:Legacy:Port={port}", $"Bridge:Legacy:Tls={tls}", $"Bridge:Legacy:TrustedCertificate={store.CertificatePath}");

        var result = await Swaks.SendAsync(s.Port, Alice, extra: ["--header", "Message-Id: <tls@test>"]);

        Assert.StartsWith("250 2.0.0 ", result.FinalReply, StringComparison.Ordinal);
        var stored = Encoding.UTF8.GetString(Assert.Single(await store.FetchInboxAsync(TestAccounts.Alice)));
        Assert.Contains("<tls@test>", stored, StringComparison.Ordinal);
        Assert.Contains("(using TLS", stored, StringComparison.Ordinal); // Dovecot's own Received header notes the TLS session
    }

    [Fact]
    public async Task An_untrusted_store_certificate_is_refused_and_the_message_deferred()
    {
        await using var store = await DovecotServer.StartTlsStoreAsync(TestAccounts.Alice);
        await using var s = await SpoolScenario.StartAsync("Bridge:Mode=Legacy", "Bridge:Legacy:Host=127.0.0.1",
            $"Bridge:Legacy:Port={store.LmtpPort}", "Bridge:Legacy:Tls=StartTls", "Bridge:Retry:MaxAttempts=2", "Bridge:Retry:Budget=00:00:05");

        var result = await Swaks.SendAsync(s.Port, Alice);

        Assert.StartsWith("451 4.4.1 ", result.FinalReply, StringComparison.Ordinal);
        Assert.Empty(await store.FetchInboxAsync(TestAccounts.Alice));
    }
}
