// Job: the Dovecot part of `mailbridge check`, read with doveconf(1) (/etc/dovecot/dovecot.conf, or the file given with
// `check --dovecot-config`). Where users read the spool (anyone in Spool mode): INBOX must be Bridge's spool
// directory with the user's name (mail_location INBOX=<Bridge:Spool:Directory>/%u or %n), Dovecot must be able to
// create dotlocks there (a 1777 spool, or mail_privileged_group = the spool directory's group with write), and its
// mbox_write_locks must share a method with Bridge (which takes dotlock and fcntl). Where Bridge relays to the store
// over LMTP/SMTP (anyone in Legacy mode) and Bridge:Legacy:Host is this machine: Dovecot must listen on that port.
// Failure: none thrown; doveconf missing -> no findings; doveconf failing -> one WARN with its message.
using System.Globalization;
using System.Text.RegularExpressions;
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery.Smtp;
using Bridge.Native;
using Bridge.Routing;

namespace Bridge.Operations;

internal static partial class DovecotCheck
{
    [GeneratedRegex(@"^service (lmtp|submission) \{(?<body>.*?)^\}", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex ServiceBlock();

    [GeneratedRegex(@"^\s*port = (\d+)", RegexOptions.Multiline)]
    private static partial Regex PortLine();

    public static async Task<IReadOnlyList<Finding>> RunAsync(BridgeOptions options, string? configFile, CancellationToken cancellationToken)
    {
        var doveconf = ConfigTool.Find("doveconf");
        if (doveconf is null)
        {
            return [];
        }
        var file = configFile ?? "/etc/dovecot/dovecot.conf";
        var subject = $"dovecot {file}";
        if (!File.Exists(file))
        {
            return [new Finding(Level.Ok, subject, "does not exist: Dovecot is installed but not configured here, not checked (check --dovecot-config FILE names another)")];
        }
        var findings = new List<Finding>();
        var spoolUsers = options.Mode == BridgeMode.Spool || options.Users.Any(u => u.Mode == BridgeMode.Spool);
        if (spoolUsers)
        {
            var (ok, output) = await ConfigTool.RunAsync(doveconf, ["-c", file, "-h", "mail_location", "mbox_write_locks", "mail_privileged_group"], cancellationToken).ConfigureAwait(false);
            var values = output.Split('\n');
            if (!ok || values.Length < 3)
            {
                return [new Finding(Level.Warn, subject, $"doveconf failed: {output.Trim()}", "run doveconf yourself to see why")];
            }
            findings.Add(CheckInbox(subject, file, values[0].Trim(), options.Spool.Directory));
            findings.Add(CheckLocks(subject, file, values[1].Trim()));
            findings.Add(CheckDotlocks(subject, file, values[2].Trim(), options.Spool));
        }
        if (options.UsesStore && options.Legacy.Host is "127.0.0.1" or "localhost" or "::1")
        {
            var (ok, output) = await ConfigTool.RunAsync(doveconf, ["-c", file, "-n"], cancellationToken).ConfigureAwait(false);
            if (!ok)
            {
                return [.. findings, new Finding(Level.Warn, subject, $"doveconf failed: {output.Trim()}", "run doveconf yourself to see why")];
            }
            var service = options.Legacy.Protocol == StoreProtocol.Lmtp ? "lmtp" : "submission";
            var ports = ServiceBlock().Matches(output).Where(m => m.Groups[1].Value == service)
                .SelectMany(m => PortLine().Matches(m.Groups["body"].Value).Select(p => int.Parse(p.Groups[1].Value, CultureInfo.InvariantCulture))).ToList();
            findings.Add(ports.Contains(options.Legacy.Port)
                ? new Finding(Level.Ok, subject, $"service {service} listens on port {options.Legacy.Port} (Bridge:Legacy:Port)")
                : new Finding(Level.Fail, subject,
                    $"no {service} listener on port {options.Legacy.Port} (Bridge:Legacy:Port); {service} listens on {(ports.Count == 0 ? "no inet port" : string.Join(", ", ports))}",
                    $"add service {service} {{ inet_listener {service} {{ address = 127.0.0.1  port = {options.Legacy.Port} }} }} to {file} (deploy/dovecot/20-bridge-lmtp.conf), or set Bridge:Legacy:Port"));
        }
        return findings;
    }

    private static Finding CheckInbox(string subject, string file, string location, string spool)
    {
        var inbox = location.Split(':').FirstOrDefault(p => p.StartsWith("INBOX=", StringComparison.Ordinal))?["INBOX=".Length..];
        var expected = spool.TrimEnd('/');
        var fits = inbox is not null && (inbox == $"{expected}/%u" || inbox == $"{expected}/%n" || inbox == $"{expected}/%Lu" || inbox == $"{expected}/%Ln");
        return fits
            ? new Finding(Level.Ok, subject, $"INBOX is {inbox}: Bridge's spool, one file per user")
            : new Finding(Level.Fail, subject,
                $"mail_location is '{location}': users' INBOX is {(inbox is null ? "not a file in the spool" : inbox)}, not the mbox Bridge writes ({expected}/<first short name>); they see no new mail",
                $"mail_location = mbox:~/mail:INBOX={expected}/%u in {file} (deploy/dovecot/10-bridge-spool.conf)");
    }

    private static Finding CheckLocks(string subject, string file, string locks)
    {
        var methods = locks.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var fcntl = methods.Contains("fcntl");
        var dotlock = methods.Any(m => m.StartsWith("dotlock", StringComparison.Ordinal));
        return fcntl && dotlock
            ? new Finding(Level.Ok, subject, $"mbox_write_locks = {locks}: the same locks Bridge takes")
            : fcntl || dotlock
                ? new Finding(Level.Warn, subject, $"mbox_write_locks = {locks}: shares one method with Bridge (dotlock + fcntl), not both: other mail programs may not be excluded",
                    $"mbox_write_locks = dotlock fcntl in {file}")
                : new Finding(Level.Fail, subject, $"mbox_write_locks = {locks}: no lock Bridge takes; Dovecot and Bridge can write one mbox at once and corrupt it",
                    $"mbox_write_locks = dotlock fcntl in {file}");
    }

    private static Finding CheckDotlocks(string subject, string file, string privilegedGroup, SpoolOptions spool)
    {
        if (Libc.Lstat(spool.Directory, out var stat) != 0)
        {
            return new Finding(Level.Warn, subject, $"the spool {spool.Directory} does not exist: dotlocks not checked");
        }
        if ((stat.Permissions & 0x3) == 0x3) // others may create files (1777)
        {
            return new Finding(Level.Ok, subject, $"users can create dotlocks in {spool.Directory} (mode {Convert.ToString(stat.Permissions, 8)})");
        }
        var groupId = privilegedGroup.Length == 0 ? null : Libc.GetGroupId(privilegedGroup);
        return groupId == stat.Gid && (stat.Permissions & 0x18) == 0x18
            ? new Finding(Level.Ok, subject, $"mail_privileged_group = {privilegedGroup} can create dotlocks in {spool.Directory}")
            : new Finding(Level.Fail, subject,
                $"Dovecot cannot create dotlocks in {spool.Directory} (mode {Convert.ToString(stat.Permissions, 8)}, gid {stat.Gid}) with mail_privileged_group = '{privilegedGroup}': its writes to the mbox (expunge, flags) fail",
                $"mail_privileged_group = {spool.MailGroup} in {file} with the spool 2775 root:{spool.MailGroup}, or chmod 1777 {spool.Directory}");
    }
}
