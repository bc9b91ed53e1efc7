using Bridge.Delivery.Spool;
using Bridge.Native;

namespace Bridge.UnitTests.Delivery.Spool;

/// <summary>Pure logic: the one definition of a mailbox Bridge may write, as delivery and `check` apply it.</summary>
public class MailboxSafetyRulesTests
{
    private static FileStat Stat(uint type, ulong links = 1, uint uid = 1000, uint permissions = 0x180) =>
        new(1, 2, links, type | permissions, uid, 8, 100, 0);

    private const uint Regular = 0x8000, Symlink = 0xA000, Fifo = 0x1000, Directory = 0x4000;

    [Fact]
    public void A_regular_file_with_one_link_owned_by_its_user_is_safe() => Assert.Null(MailboxSafety.Problem(Stat(Regular), 1000));

    [Theory]
    [InlineData(Symlink, 1ul, 1000u, "is a symbolic link")]
    [InlineData(Fifo, 1ul, 1000u, "is not a regular file")]
    [InlineData(Directory, 1ul, 1000u, "is not a regular file")]
    [InlineData(Regular, 2ul, 1000u, "has 2 hard links")]
    [InlineData(Regular, 1ul, 1001u, "is owned by uid 1001, not by its user (uid 1000)")]
    public void Each_rule_names_what_is_wrong(uint type, ulong links, uint uid, string text) =>
        Assert.Equal(text, MailboxSafety.Problem(Stat(type, links, uid), 1000)?.Text);

    [Fact]
    public void The_owner_is_not_judged_when_it_is_not_known() => Assert.Null(MailboxSafety.Problem(Stat(Regular, uid: 0), null));

    [Theory]
    [InlineData(0x180u, false)] // 0600
    [InlineData(0x1B0u, false)] // 0660, group mail
    [InlineData(0x1A4u, true)] // 0644
    [InlineData(0x182u, true)] // 0602
    public void Mail_open_to_others_is_a_finding(uint permissions, bool open) =>
        Assert.Equal(open, MailboxSafety.OpenToOthers(Stat(Regular, permissions: permissions)));
}
