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

/// <summary>Legacy mode with Bridge:Legacy:Username/Password against Dovecot's submission service (AUTH required).</summary>
public class StoreAuthTests
{
    [Fact]
    public async Task Bridge_authenticates_to_an_smtp_store_that_requires_it()
    {
        var lmtpPort = FreePort.Next();
        var frontPort = FreePort.Next();
        await using var store = await DovecotServer.StartStoreWithSubmissionAsync(lmtpPort, frontPort, TestAccounts.Alice);
        await using var front = await PostfixServer.StartStoreFrontAsync(SpoolScenario.Domain, lmtpPort, frontPort);
        string[] legacy = ["Bridge:Mode=Legacy", "Bridge:Legacy:Host=127.0.0.1", $"Bridge:Legacy:Port={store.SubmissionPort}",
            "Bridge:Legacy:Protocol=Smtp", "Bridge:Retry:MaxAttempts=1", "Bridge:Retry:Budget=00:00:10"];
        var to = $"{TestAccounts.Alice}@{SpoolScenario.Domain}";

        await using (var anonymous = await SpoolScenario.StartAsync(legacy))
        {
            var refused = await Swaks.SendAsync(anonymous.Port, to);
            Assert.StartsWith("451 4.4.1", refused.FinalReply, StringComparison.Ordinal); // the store wants AUTH: deferred, not bounced
        }

        await using var s = await SpoolScenario.StartAsync([.. legacy, $"Bridge:Legacy:Username={TestAccounts.Alice}", $"Bridge:Legacy:Password={DovecotServer.Password}"]);
        var result = await Swaks.SendAsync(s.Port, to, extra: ["--header", "Message-Id: <auth@test>"]);

        Assert.StartsWith("250 ", result.FinalReply, StringComparison.Ordinal);
        byte[]? stored = null;
        for (var i = 0; i < 120 && stored is null; i++)
        {
            stored = (await store.FetchInboxAsync(TestAccounts.Alice)).SingleOrDefault();
            await Task.Delay(stored is null ? 250 : 0);
        }
        Assert.NotNull(stored);
        Assert.Contains("<auth@test>", Encoding.UTF8.GetString(stored), StringComparison.Ordinal);
    }
}
