// Job: validate a BridgeOptions snapshot at start and on every reload; every message names the key to fix.
// Failure: returns a failed ValidateOptionsResult; the caller refuses to start or keeps the last good snapshot.
using System.Net;
using Bridge.Common;
using Bridge.Routing;
using Microsoft.Extensions.Options;

namespace Bridge.Configuration;

public sealed class BridgeOptionsValidator : IValidateOptions<BridgeOptions>
{
    public ValidateOptionsResult Validate(string? name, BridgeOptions options)
    {
        var errors = new List<string>();
        const string p = BridgeOptions.Section;

        if (!IPAddress.TryParse(options.Listen.Address, out _))
        {
            errors.Add($"{p}:Listen:Address '{options.Listen.Address}' is not an IP address");
        }
        if (options.Listen.Port is < 1 or > 65535)
        {
            errors.Add($"{p}:Listen:Port {options.Listen.Port} is not in 1..65535");
        }
        if (options.Legacy.LoginCollectTimeout < TimeSpan.FromSeconds(1) || options.Legacy.LoginCollectTimeout > TimeSpan.FromMinutes(5))
        {
            errors.Add($"{BridgeOptions.Section}:Legacy:LoginCollectTimeout {options.Legacy.LoginCollectTimeout} is not between 00:00:01 and 00:05:00 (a login waits for it)");
        }
        ValidateLmtp(options, errors);
        ValidateCollect(options, errors);
        if (options.Aliases.MaxFileBytes is < 1 or > (1L << 30))
        {
            errors.Add($"{AliasLimits.MaxFileBytesKey} must be between 1 and 1073741824 bytes");
        }
        if (options.Aliases.MaxMembers < 1)
        {
            errors.Add($"{AliasLimits.MaxMembersKey} must be at least 1");
        }
        for (var i = 0; i < options.AliasFiles.Count; i++)
        {
            if (!Path.IsPathRooted(options.AliasFiles[i]))
            {
                errors.Add($"{BridgeOptions.Section}:AliasFiles[{i}] '{options.AliasFiles[i]}' must be an absolute path");
            }
        }
        ValidateServerName(options.ServerName, errors);
        if (!Enum.IsDefined(options.Spool.QuotaExceeded))
        {
            errors.Add($"{p}:Spool:QuotaExceeded must be Bounce or Defer");
        }
        if (!Enum.IsDefined(options.Spool.Format))
        {
            errors.Add($"{p}:Spool:Format must be Mboxrd or Mboxo");
        }
        if (!Enum.IsDefined(options.Mode))
        {
            errors.Add($"{p}:Mode must be Spool or Legacy");
        }
        if (options.MaxMessageBytes < 1024)
        {
            errors.Add($"{p}:MaxMessageBytes {options.MaxMessageBytes} is below 1024");
        }
        if (options.Metrics.PrometheusPort is < 0 or > 65535)
        {
            errors.Add($"{p}:Metrics:PrometheusPort {options.Metrics.PrometheusPort} is not in 0..65535 (0 = off)");
        }
        if (options.MaxLineBytes < 1000)
        {
            errors.Add($"{p}:MaxLineBytes {options.MaxLineBytes} is below the 1000 bytes RFC 5321 requires");
        }
        if (options.MaxConnections is < 1 or > 100_000)
        {
            errors.Add($"{p}:MaxConnections {options.MaxConnections} is not in 1..100000");
        }
        if (options.MaxRecipients is < 1 or > 100_000)
        {
            errors.Add($"{p}:MaxRecipients {options.MaxRecipients} is not in 1..100000");
        }
        if (options.MaxReceivedHeaders < 1)
        {
            errors.Add($"{p}:MaxReceivedHeaders {options.MaxReceivedHeaders} must be at least 1");
        }
        if (options.CommandTimeout < TimeSpan.FromSeconds(1))
        {
            errors.Add($"{p}:CommandTimeout {options.CommandTimeout} must be at least 1 s");
        }
        if (options.MaxErrorsPerSession < 1)
        {
            errors.Add($"{p}:MaxErrorsPerSession {options.MaxErrorsPerSession} must be at least 1");
        }
        if (options.MaxBytesInFlight < 1 << 20)
        {
            errors.Add($"{p}:MaxBytesInFlight {options.MaxBytesInFlight} is below 1048576 (1 MiB)");
        }
        if (options.SlowClientTimeout < TimeSpan.FromSeconds(1))
        {
            errors.Add($"{p}:SlowClientTimeout {options.SlowClientTimeout} must be at least 1 s");
        }
        if (options.DeliveryTimeout is { } deliveryTimeout && (deliveryTimeout < TimeSpan.FromSeconds(1) || deliveryTimeout > TimeSpan.FromMinutes(9)))
        {
            errors.Add($"{p}:DeliveryTimeout {deliveryTimeout} is not between 00:00:01 and 00:09:00 (MTAs wait 10 minutes for the reply)");
        }
        for (var i = 0; i < options.AllowedClients.Count; i++)
        {
            if (!IPNetwork.TryParse(options.AllowedClients[i], out _))
            {
                errors.Add($"{p}:AllowedClients[{i}] '{options.AllowedClients[i]}' is not a CIDR like 127.0.0.0/8 or ::1/128");
            }
        }
        if (options.RecipientDelimiter.Any(c => char.IsLetterOrDigit(c) || c is '@' or '.' || char.IsWhiteSpace(c)))
        {
            errors.Add($"{p}:RecipientDelimiter '{options.RecipientDelimiter}' may not contain letters, digits, '@', '.' or spaces");
        }
        for (var i = 0; i < options.LocalDomains.Count; i++)
        {
            var domain = options.LocalDomains[i];
            if (string.IsNullOrWhiteSpace(domain) || domain.Contains('@', StringComparison.Ordinal) || domain.Any(char.IsWhiteSpace))
            {
                errors.Add($"{p}:LocalDomains[{i}] '{domain}' is not a domain name");
            }
        }
        ValidateUsers(options, errors);
        ValidateSpool(options.Spool, errors);
        ValidateLegacy(options, errors);
        ValidateRetry(options.Retry, errors);
        if (!Bridge.Delivery.Bounces.BounceSender.TryParseRelay(options.Bounces.Relay, out _, out _))
        {
            errors.Add($"{BridgeOptions.Section}:Bounces:Relay '{options.Bounces.Relay}' is not host:port");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void ValidateServerName(string serverName, List<string> errors)
    {
        if (string.IsNullOrWhiteSpace(serverName) || serverName.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            errors.Add($"{BridgeOptions.Section}:ServerName '{serverName}' is not a host name");
            return;
        }
        // Postfix's myhostname is this host's name, fully qualified or not: compare first labels too.
        var host = Dns.GetHostName();
        if (string.Equals(serverName, host, StringComparison.OrdinalIgnoreCase) ||
            string.Equals(serverName.Split('.')[0], host.Split('.')[0], StringComparison.OrdinalIgnoreCase))
        {
            errors.Add($"{BridgeOptions.Section}:ServerName '{serverName}' equals this host's name: Postfix would defer mail " +
                       "with \"loops back to myself\"; choose another name (default bridge.localhost)");
        }
    }

    private static void ValidateUsers(BridgeOptions options, List<string> errors)
    {
        var owners = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = 0; i < options.Users.Count; i++)
        {
            var user = options.Users[i];
            var key = $"{BridgeOptions.Section}:Users[{i}]";
            if (user.ShortNames.Count == 0)
            {
                errors.Add($"{key}:ShortNames is empty: the first short name names the spool file");
                continue;
            }
            if (!ShortName.IsSafeFileName(user.ShortNames[0].ToLowerInvariant()))
            {
                errors.Add($"{key}:ShortNames[0] '{user.ShortNames[0]}' is not a safe spool file name " +
                           "([a-z0-9._-], no leading dot, at most 64 characters)");
            }
            if (user.Mode is { } mode && !Enum.IsDefined(mode))
            {
                errors.Add($"{key}:Mode must be Spool or Legacy");
            }
            for (var j = 0; j < user.ShortNames.Count; j++)
            {
                var shortName = user.ShortNames[j];
                if (string.IsNullOrWhiteSpace(shortName) || shortName.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c is '<' or '>'))
                {
                    errors.Add($"{key}:ShortNames[{j}] '{shortName}' is empty or contains spaces, controls or angle brackets");
                }
                else if (!owners.TryAdd(shortName, key))
                {
                    errors.Add($"{key}:ShortNames[{j}] '{shortName}' is already a short name of {owners[shortName]}");
                }
            }
        }
    }

    private static void ValidateSpool(SpoolOptions spool, List<string> errors)
    {
        const string key = $"{BridgeOptions.Section}:Spool";
        if (string.IsNullOrWhiteSpace(spool.Directory) || !Path.IsPathFullyQualified(spool.Directory))
        {
            errors.Add($"{key}:Directory '{spool.Directory}' must be an absolute path");
        }
        if (string.IsNullOrWhiteSpace(spool.JournalDirectory) || !Path.IsPathFullyQualified(spool.JournalDirectory))
        {
            errors.Add($"{key}:JournalDirectory '{spool.JournalDirectory}' must be an absolute path");
        }
        if (spool.MaxMailboxBytes < 0)
        {
            errors.Add($"{key}:MaxMailboxBytes {spool.MaxMailboxBytes} is negative (0 means no limit)");
        }
        if (spool.LockTimeout <= TimeSpan.Zero || spool.LockTimeout > TimeSpan.FromMinutes(5))
        {
            errors.Add($"{key}:LockTimeout {spool.LockTimeout} must be between 0 and 5 minutes (an MTA waits 10 minutes for the reply)");
        }
        if (spool.DotlockStaleAfter <= TimeSpan.Zero)
        {
            errors.Add($"{key}:DotlockStaleAfter {spool.DotlockStaleAfter} must be positive");
        }
        if (string.IsNullOrWhiteSpace(spool.MailGroup))
        {
            errors.Add($"{key}:MailGroup is empty");
        }
    }

    private static void ValidateLegacy(BridgeOptions options, List<string> errors)
    {
        const string key = $"{BridgeOptions.Section}:Legacy";
        var legacy = options.Legacy;
        if (options.UsesStore && string.IsNullOrWhiteSpace(legacy.Host))
        {
            errors.Add($"{key}:Host is empty: Legacy mode (Bridge:Mode or a user's Mode) needs the mail store's host");
        }
        if (legacy.Port is < 1 or > 65535)
        {
            errors.Add($"{key}:Port {legacy.Port} is not in 1..65535");
        }
        if (!Enum.IsDefined(legacy.Protocol))
        {
            errors.Add($"{key}:Protocol must be Smtp or Lmtp");
        }
        if (!Enum.IsDefined(legacy.Tls))
        {
            errors.Add($"{key}:Tls must be None, StartTls or Implicit");
        }
        if (legacy.MaxConnections is < 1 or > 1000)
        {
            errors.Add($"{key}:MaxConnections {legacy.MaxConnections} is not in 1..1000");
        }
        if (string.IsNullOrEmpty(legacy.Username) != string.IsNullOrEmpty(legacy.Password))
        {
            errors.Add($"{key}:Username and {key}:Password go together");
        }
        if (!string.IsNullOrEmpty(legacy.TrustedCertificate) && !IsPemCertificateFile(legacy.TrustedCertificate))
        {
            errors.Add($"{key}:TrustedCertificate '{legacy.TrustedCertificate}' is not a readable PEM certificate file");
        }
    }

    private static bool IsPemCertificateFile(string path)
    {
        try
        {
            var certificates = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
            certificates.ImportFromPemFile(path);
            return certificates.Count > 0;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
        {
            return false;
        }
    }

    private static void ValidateRetry(RetryOptions retry, List<string> errors)
    {
        const string key = $"{BridgeOptions.Section}:Retry";
        if (retry.MaxAttempts is < 1 or > 100)
        {
            errors.Add($"{key}:MaxAttempts {retry.MaxAttempts} is not in 1..100");
        }
        if (retry.BaseDelay <= TimeSpan.Zero || retry.MaxDelay < retry.BaseDelay)
        {
            errors.Add($"{key}:BaseDelay must be positive and {key}:MaxDelay at least BaseDelay");
        }
        if (retry.Budget <= TimeSpan.Zero || retry.Budget > TimeSpan.FromSeconds(300))
        {
            errors.Add($"{key}:Budget {retry.Budget} must be between 0 and 5 minutes (an MTA gives up on DATA after 10)");
        }
        if (retry.AttemptTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{key}:AttemptTimeout {retry.AttemptTimeout} must be positive (the Budget caps it anyway)");
        }
        if (retry.BreakAfterFailures < 2)
        {
            errors.Add($"{key}:BreakAfterFailures {retry.BreakAfterFailures} must be at least 2");
        }
        if (retry.BreakDuration < TimeSpan.FromMilliseconds(500))
        {
            errors.Add($"{key}:BreakDuration {retry.BreakDuration} must be at least 0.5 s");
        }
    }

    private static void ValidateCollect(BridgeOptions options, List<string> errors)
    {
        const string p = BridgeOptions.Section + ":Collect";
        var socket = options.Collect.Socket;
        if (socket.Length > 0 && (!socket.StartsWith('/') || socket.EndsWith('/') || System.Text.Encoding.UTF8.GetByteCount(socket) > 107))
        {
            errors.Add($"{p}:Socket '{socket}' must be an absolute file path of at most 107 bytes (a Unix socket's limit)");
        }
        if (socket.Length > 0 && socket == options.Lmtp.Socket)
        {
            errors.Add($"{p}:Socket is Bridge:Lmtp:Socket's path: each needs its own");
        }
        if (!TryParseMode(options.Collect.SocketMode, out _))
        {
            errors.Add($"{p}:SocketMode '{options.Collect.SocketMode}' is not an octal mode like 0660 (at most 0777)");
        }
    }

    private static void ValidateLmtp(BridgeOptions options, List<string> errors)
    {
        const string p = BridgeOptions.Section + ":Lmtp";
        var lmtp = options.Lmtp;
        if (lmtp.Socket.Length > 0 && (!lmtp.Socket.StartsWith('/') || lmtp.Socket.EndsWith('/') || System.Text.Encoding.UTF8.GetByteCount(lmtp.Socket) > 107))
        {
            errors.Add($"{p}:Socket '{lmtp.Socket}' must be an absolute file path of at most 107 bytes (a Unix socket's limit)");
        }
        if (!TryParseMode(lmtp.SocketMode, out _))
        {
            errors.Add($"{p}:SocketMode '{lmtp.SocketMode}' is not an octal mode like 0660 (at most 0777)");
        }
        if (lmtp.Socket.Length > 0 && Native.Libc.GetGroupId(lmtp.SocketGroup) is null)
        {
            errors.Add($"{p}:SocketGroup '{lmtp.SocketGroup}' is not a group of this machine");
        }
        if (lmtp.Port is < 0 or > 65535)
        {
            errors.Add($"{p}:Port {lmtp.Port} is not in 0..65535 (0 = no LMTP over TCP)");
        }
        if (lmtp.Port > 0 && !IPAddress.TryParse(lmtp.Address, out _))
        {
            errors.Add($"{p}:Address '{lmtp.Address}' is not an IP address");
        }
        if (lmtp.Port > 0 && lmtp.Port == options.Listen.Port && lmtp.Address == options.Listen.Address)
        {
            errors.Add($"{p}:Port {lmtp.Port} is the SMTP listener's (Bridge:Listen:Port): LMTP needs a port of its own");
        }
    }

    /// <summary>An octal permission mode such as 0660 (up to 0777; no set-id or sticky bits).</summary>
    public static bool TryParseMode(string text, out UnixFileMode mode)
    {
        mode = 0;
        if (text.Length is < 1 or > 4 || text.Any(c => c is < '0' or > '7'))
        {
            return false;
        }
        var value = Convert.ToInt32(text, 8);
        mode = (UnixFileMode)value;
        return value <= 0x1FF;
    }
}
