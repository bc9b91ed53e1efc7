// Job: the configuration interface of Bridge (section "Bridge"). These names are part of the product.
// Failure: binding errors and invalid values are reported by BridgeOptionsValidator, naming the key.
using Bridge.Common;
using Bridge.Delivery.Smtp;
using Bridge.Delivery.Spool;
using Bridge.Routing;

namespace Bridge.Configuration;

public sealed class BridgeOptions
{
    public const string Section = "Bridge";

    public ListenOptions Listen { get; set; } = new();

    /// <summary>LMTP intake (RFC 2033) beside the SMTP listener: on a Unix socket and/or a TCP port; off by default.</summary>
    public LmtpOptions Lmtp { get; set; } = new();

    /// <summary>Greeting/EHLO name. Must differ from the host name: Postfix defers mail that "loops back to myself".</summary>
    public string ServerName { get; set; } = "bridge.localhost";

    public BridgeMode Mode { get; set; } = BridgeMode.Spool;

    public List<string> LocalDomains { get; set; } = [];

    public List<UserOptions> Users { get; set; } = [];

    public string RecipientDelimiter { get; set; } = "+";

    public bool UseSystemAccounts { get; set; } = true;

    /// <summary>aliases(5) files (e.g. /etc/aliases), looked up before users and reread when they change.</summary>
    public List<string> AliasFiles { get; set; } = [];

    /// <summary>Limits on reading and expanding the aliases (a user's :include: list must not exhaust memory).</summary>
    public AliasOptions Aliases { get; set; } = new();

    public int MaxMessageBytes { get; set; } = 25 * 1024 * 1024;

    /// <summary>Longest line Bridge accepts, in commands and in messages (RFC 5321 needs 1000); longer: 500 5.5.2 and close.</summary>
    public int MaxLineBytes { get; set; } = 1 << 20;

    /// <summary>Concurrent SMTP sessions; beyond it a new connection is answered 421 4.7.0.</summary>
    public int MaxConnections { get; set; } = 100;

    /// <summary>Recipients per message; more are answered 452 4.5.3 (the MTA sends them in another transaction).</summary>
    public int MaxRecipients { get; set; } = 1000;

    /// <summary>CIDRs allowed to connect; empty means loopback only (127.0.0.0/8, ::1). Others get 554 5.7.1.</summary>
    public List<string> AllowedClients { get; set; } = [];

    /// <summary>A message with more Received: headers than this is a loop: 554 5.4.6.</summary>
    public int MaxReceivedHeaders { get; set; } = 100;

    /// <summary>How long a session may be idle waiting for the next command (RFC 5321: 5 minutes). Not a cap on the session.</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Consecutive errors (refused or malformed commands) that end a session.</summary>
    public int MaxErrorsPerSession { get; set; } = 100;

    /// <summary>Bytes all sessions together may hold unanswered (messages being received or delivered), beyond 1 MiB that
    /// each session may always hold; a session that would exceed it gets 452 4.3.1 and is closed. 256 MiB: ten
    /// messages of the default MaxMessageBytes at once, a fraction of a small mail host's memory.</summary>
    public long MaxBytesInFlight { get; set; } = 256L << 20;

    /// <summary>When all MaxConnections slots are taken, a session that has waited longer than this for its client
    /// (idle, or a command or message arriving at less than 500 bytes/s) gives its slot to the new connection.</summary>
    public TimeSpan SlowClientTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest time one message's delivery may take before the client is answered 451 4.3.0 anyway; null:
    /// Retry:Budget + 2 x Spool:LockTimeout + 30 s (at most 9 minutes, below an MTA's 10-minute wait for the reply).</summary>
    public TimeSpan? DeliveryTimeout { get; set; }

    /// <summary>DeliveryTimeout as configured, or its default derived from the retry budget and lock timeout.</summary>
    public TimeSpan EffectiveDeliveryTimeout => DeliveryTimeout ??
        TimeSpan.FromTicks(Math.Min(TimeSpan.FromMinutes(9).Ticks, (Retry.Budget + (2 * Spool.LockTimeout) + TimeSpan.FromSeconds(30)).Ticks));

    public SpoolOptions Spool { get; set; } = new();

    public CollectOptions Collect { get; set; } = new();

    public LegacyOptions Legacy { get; set; } = new();

    public RetryOptions Retry { get; set; } = new();

    public BounceOptions Bounces { get; set; } = new();

    public LoggingOptions Logging { get; set; } = new();

    public MetricsOptions Metrics { get; set; } = new();

    /// <summary>True when Bridge:Mode or any user's Mode sends mail to the store.</summary>
    public bool UsesStore => Mode == BridgeMode.Legacy || Users.Any(u => u.Mode == BridgeMode.Legacy);
}

public sealed class ListenOptions
{
    public string Address { get; set; } = "127.0.0.1";

    public int Port { get; set; } = 627;
}

public sealed class LmtpOptions
{
    /// <summary>Path of the Unix socket Bridge creates for LMTP (read at start); empty = none. A stale socket there is
    /// replaced; anything else at the path stops the start.</summary>
    public string Socket { get; set; } = "";

    /// <summary>Octal permissions of the socket: who may connect is decided by the file system.</summary>
    public string SocketMode { get; set; } = "0660";

    /// <summary>Group of the socket (the MTA's delivery agents must be in it, or use SocketMode 0666).</summary>
    public string SocketGroup { get; set; } = "mail";

    /// <summary>Address of an LMTP listener over TCP (with Port).</summary>
    public string Address { get; set; } = "127.0.0.1";

    /// <summary>Port of an LMTP listener over TCP; 0 = none (read at start).</summary>
    public int Port { get; set; }

    public bool Enabled => Socket.Length > 0 || Port > 0;
}

/// <summary>The socket Dovecot's post-login client asks the daemon to collect a login's spool through.</summary>
public sealed class CollectOptions
{
    /// <summary>Path of the Unix socket (read at start); empty = none. One that cannot be made is logged, and the
    /// daemon runs without it (deliveries matter more than collection).</summary>
    public string Socket { get; set; } = "/run/bridge/collect";

    /// <summary>Octal permissions of the socket.</summary>
    public string SocketMode { get; set; } = "0660";

    /// <summary>Group of the socket: Dovecot's post-login service must be root or in it. When the group does not exist,
    /// Bridge's own group.</summary>
    public string SocketGroup { get; set; } = "dovecot";
}

public sealed class AliasOptions
{
    /// <summary>The largest alias file or :include: file Bridge reads; a larger one is not used (named in the log).</summary>
    public long MaxFileBytes { get; set; } = AliasLimits.Default.MaxFileBytes;

    /// <summary>The most users one alias may expand to; more: refused at RCPT (550 5.3.5).</summary>
    public int MaxMembers { get; set; } = AliasLimits.Default.MaxMembers;
}

public sealed class UserOptions
{
    public List<string> ShortNames { get; set; } = [];

    public BridgeMode? Mode { get; set; }
}

public enum QuotaPolicy
{
    Bounce,
    Defer,
}

public sealed class SpoolOptions
{
    public string Directory { get; set; } = "/var/mail";

    /// <summary>0 = no limit. Postfix's mailbox_size_limit default.</summary>
    public long MaxMailboxBytes { get; set; } = 51_200_000;

    /// <summary>What a full mailbox (over MaxMailboxBytes, or the file system's quota) means for its mail: Bounce
    /// (552 5.2.2) or Defer (452 4.2.2, the MTA retries; Dovecot's quota_full_tempfail).</summary>
    public QuotaPolicy QuotaExceeded { get; set; } = QuotaPolicy.Bounce;

    /// <summary>How "From " lines in a message are quoted in the mbox: Mboxrd (every "&gt;*From " line gets one more
    /// "&gt;", so drain and collection give the message back byte for byte) or Mboxo (as Postfix local(8) writes).</summary>
    public MboxFormat Format { get; set; } = MboxFormat.Mboxrd;

    /// <summary>How long a delivery waits for the dotlock and the fcntl lock before answering 451 4.2.0.</summary>
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>A dotlock older than this (ctime) is stale and removed, as Postfix does after 500 s.</summary>
    public TimeSpan DotlockStaleAfter { get; set; } = TimeSpan.FromSeconds(500);

    /// <summary>Where Bridge notes each append in progress, to clean up after a crash (read at start).</summary>
    public string JournalDirectory { get; set; } = "/var/lib/bridge/journal";

    /// <summary>Group given to new mailboxes (Debian: mail).</summary>
    public string MailGroup { get; set; } = "mail";
}

/// <summary>The mail store that Legacy mode relays to.</summary>
public sealed class LegacyOptions
{
    public string Host { get; set; } = "";

    public int Port { get; set; } = 24;

    public StoreProtocol Protocol { get; set; } = StoreProtocol.Lmtp;

    public StoreTls Tls { get; set; } = StoreTls.None;

    /// <summary>PEM file of the store's certificate or of the CA that issued it, trusted in addition to the system's CAs.</summary>
    public string? TrustedCertificate { get; set; }

    public string? Username { get; set; }

    public string? Password { get; set; }

    /// <summary>Pooled, reused connections to the store. 20 is Postfix's default concurrency towards one destination
    /// (default_destination_concurrency_limit), so each of its deliveries finds a store connection; bench/ measured
    /// 8-13% more msg/s than with 8.</summary>
    public int MaxConnections { get; set; } = 20;

    /// <summary>Send one-recipient messages with BDAT (RFC 3030) when the store offers CHUNKING and PIPELINING: one
    /// round trip per message and no dot-stuffing. false: always DATA (for a store whose CHUNKING misbehaves).</summary>
    public bool Chunking { get; set; } = true;

    /// <summary>When the store still fails after the retry budget, write to the recipient's spool instead of answering 4xx.</summary>
    public bool FallbackToSpool { get; set; }

    /// <summary>With FallbackToSpool: move what fell back to the spool on to the store by itself once it answers again.</summary>
    public bool CollectAfterFallback { get; set; } = true;

    /// <summary>Longest time `collect` (the Dovecot post-login script) spends moving a user's spool into the store; what
    /// is left stays for the next login.</summary>
    public TimeSpan LoginCollectTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>Polly policies for the store: per-attempt timeout inside exponential retry with jitter inside a circuit breaker.</summary>
public sealed class RetryOptions
{
    public int MaxAttempts { get; set; } = 4;

    public TimeSpan BaseDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(5);

    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Total time for one message; well below an MTA's 600 s end-of-data timeout.</summary>
    public TimeSpan Budget { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Messages for which the store could not be reached (after their retries; connection failures and timeouts,
    /// never a store's reply) within the sampling window before the breaker opens.</summary>
    public int BreakAfterFailures { get; set; } = 5;

    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>Where delivery status notifications go: the local MTA, which routes them to the sender.</summary>
public sealed class BounceOptions
{
    /// <summary>host:port of an SMTP server that accepts bounces (MAIL FROM:&lt;&gt;) for any sender.</summary>
    public string Relay { get; set; } = "127.0.0.1:25";
}

public sealed class LoggingOptions
{
    /// <summary>One JSON object per log line instead of text (read at start).</summary>
    public bool Json { get; set; }
}

public sealed class MetricsOptions
{
    /// <summary>Port of a Prometheus endpoint on 127.0.0.1 (http://127.0.0.1:PORT/metrics); 0 = off (read at start).</summary>
    public int PrometheusPort { get; set; }
}
