// Job: the configuration interface of Bridge (section "Bridge"). These names are part of the product.
// Failure: binding errors and invalid values are reported by BridgeOptionsValidator, naming the key.
using Bridge.Routing;

namespace Bridge.Hosting;

public sealed class BridgeOptions
{
    public const string Section = "Bridge";

    public ListenOptions Listen { get; set; } = new();

    /// <summary>Greeting/EHLO name. Must differ from the host name: Postfix defers mail that "loops back to myself".</summary>
    public string ServerName { get; set; } = "bridge.localhost";

    public BridgeMode Mode { get; set; } = BridgeMode.Spool;

    public List<string> LocalDomains { get; set; } = [];

    public List<UserOptions> Users { get; set; } = [];

    public string RecipientDelimiter { get; set; } = "+";

    public bool UseSystemAccounts { get; set; } = true;

    public int MaxMessageBytes { get; set; } = 25 * 1024 * 1024;

    public SpoolOptions Spool { get; set; } = new();
}

public sealed class ListenOptions
{
    public string Address { get; set; } = "127.0.0.1";

    public int Port { get; set; } = 627;
}

public sealed class UserOptions
{
    public List<string> ShortNames { get; set; } = [];

    public BridgeMode? Mode { get; set; }
}

public sealed class SpoolOptions
{
    public string Directory { get; set; } = "/var/mail";

    /// <summary>0 = no limit. Postfix's mailbox_size_limit default.</summary>
    public long MaxMailboxBytes { get; set; } = 51_200_000;

    /// <summary>How long a delivery waits for the dotlock and the fcntl lock before answering 451 4.2.0.</summary>
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>A dotlock older than this (ctime) is stale and removed, as Postfix does after 500 s.</summary>
    public TimeSpan DotlockStaleAfter { get; set; } = TimeSpan.FromSeconds(500);

    /// <summary>Group given to new mailboxes (Debian: mail).</summary>
    public string MailGroup { get; set; } = "mail";
}
