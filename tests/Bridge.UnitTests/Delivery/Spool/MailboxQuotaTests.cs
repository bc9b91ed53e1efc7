using Bridge.Delivery.Spool;
using Bridge.Native;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>Quota known before DATA, on files in a temporary folder (no root).</summary>
public sealed class MailboxQuotaTests : IDisposable
{
    private readonly string _spool = Directory.CreateTempSubdirectory("bridge-quota-").FullName;

    public void Dispose() => Directory.Delete(_spool, recursive: true);

    private SpoolSettings Settings(long max, bool defer = false) =>
        new(_spool, max, TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5), Libc.Getegid(), defer);

    private void Mailbox(string name, int bytes) => File.WriteAllBytes(Path.Combine(_spool, name), new byte[bytes]);

    [Fact]
    public void A_mailbox_at_or_over_the_limit_is_refused_552()
    {
        Mailbox("bob", 1000);
        Assert.Equal("552 5.2.2 Mailbox bob is full", MailboxQuota.RefusalAtRcpt(Settings(1000), "bob", 0)?.ToString());
    }

    [Fact]
    public void The_announced_size_counts()
    {
        Mailbox("bob", 600);
        Assert.Null(MailboxQuota.RefusalAtRcpt(Settings(1000), "bob", 400));
        Assert.Equal("552 5.2.2 Mailbox bob is full", MailboxQuota.RefusalAtRcpt(Settings(1000), "bob", 401)?.ToString());
    }

    [Fact]
    public void With_defer_a_full_mailbox_is_452_4_2_2()
    {
        Mailbox("bob", 2000);
        Assert.Equal("452 4.2.2 Mailbox bob is full, try again later", MailboxQuota.RefusalAtRcpt(Settings(1000, defer: true), "bob", 0)?.ToString());
    }

    [Fact]
    public void No_limit_a_missing_mailbox_or_an_unsafe_name_is_never_refused_here()
    {
        Mailbox("bob", 5000);
        Assert.Null(MailboxQuota.RefusalAtRcpt(Settings(0), "bob", 1 << 30));
        Assert.Null(MailboxQuota.RefusalAtRcpt(Settings(1000), "carol", 999));
        Assert.Null(MailboxQuota.RefusalAtRcpt(Settings(1000), "../bob", 0));
    }
}
