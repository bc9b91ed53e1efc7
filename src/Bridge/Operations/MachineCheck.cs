// Job: `mailbridge check`: validate the configuration and this machine the way an admin would before trusting
// Bridge with mail, in this order: the configuration, the listening port, the spool directory (SpoolCheck), the
// journal (JournalCheck), each configured user's account and mailbox (UserCheck), the aliases (AliasCheck), in Legacy
// mode the mail store, where Postfix, Exim and Dovecot are installed their settings for Bridge (PostfixCheck,
// EximCheck, DovecotCheck), and the LMTP and collect sockets (LmtpSocketCheck).
// Failure: every problem is a Finding (FAIL or WARN with its fix); the command exits 1 when any FAIL.
using System.Net;
using System.Net.Sockets;
using Bridge.Common;
using Bridge.Configuration;
using Bridge.Delivery.Smtp;
using Bridge.Delivery.Spool;
using Bridge.Native;
using Bridge.Routing;
using Microsoft.Extensions.Configuration;

namespace Bridge.Operations;

/// <summary>The peers' configurations `check` reads, when not their defaults.</summary>
public sealed record PeerConfigs(string? DovecotConfig, string? Exim, string? EximConfig);

public static class MachineCheck
{
    /// <param name="tools">Where `check --dovecot-config/--exim/--exim-config` point (null: the programs' own defaults).</param>
    public static async Task<IReadOnlyList<Finding>> RunAsync(IConfiguration configuration, IPasswdDatabase passwd, CancellationToken cancellationToken,
        PeerConfigs? tools = null)
    {
        tools ??= new PeerConfigs(null, null, null);
        var findings = new List<Finding>();
        var (snapshot, errors) = SettingsSnapshot.Load(configuration, passwd);
        if (snapshot is null)
        {
            findings.AddRange(errors.Select(e => new Finding(Level.Fail, "configuration", e)));
            return findings;
        }
        var options = snapshot.Options;
        findings.Add(new Finding(Level.Ok, "configuration", $"valid; mode {options.Mode}, server name {options.ServerName}"));
        findings.Add(CheckPort(options.Listen));
        findings.AddRange(SpoolCheck.Run(options, passwd));
        findings.AddRange(JournalCheck.Run(options.Spool));
        findings.AddRange(UserCheck.Run(options, snapshot, passwd));
        findings.AddRange(AliasCheck.Run(snapshot));
        if (options.UsesStore)
        {
            findings.Add(await CheckStoreAsync(snapshot.Store.Endpoint, cancellationToken).ConfigureAwait(false));
        }
        var postfix = await PostfixCheck.RunAsync(options, cancellationToken).ConfigureAwait(false);
        findings.AddRange(postfix);
        findings.AddRange(await DovecotCheck.RunAsync(options, tools.DovecotConfig, cancellationToken).ConfigureAwait(false));
        var exim = await EximCheck.RunAsync(options, tools.Exim, tools.EximConfig, cancellationToken).ConfigureAwait(false);
        findings.AddRange(exim);
        var mtaUsers = new List<string>();
        if (postfix.Count > 0 && await PostfixCheck.MailOwnerAsync(cancellationToken).ConfigureAwait(false) is { } owner)
        {
            mtaUsers.Add(owner);
        }
        if (exim.Count > 0)
        {
            mtaUsers.Add("Debian-exim");
        }
        findings.AddRange(LmtpSocketCheck.Run(options.Lmtp, mtaUsers));
        findings.AddRange(LmtpSocketCheck.RunCollect(options));
        if (postfix.Count == 0 && exim.Count == 0)
        {
            findings.Add(new Finding(Level.Ok, "mta", "neither Postfix (postconf) nor Exim is installed here: your MTA's settings were not checked"));
        }
        return findings;
    }

    private static Finding CheckPort(ListenOptions listen)
    {
        var subject = $"listen {listen.Address}:{listen.Port}";
        try
        {
            using var probe = new TcpListener(IPAddress.Parse(listen.Address), listen.Port);
            probe.Start();
            return new Finding(Level.Ok, subject, "the port can be bound");
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AccessDenied)
        {
            return new Finding(Level.Fail, subject, "permission denied", "run as root or with CAP_NET_BIND_SERVICE, or set Bridge:Listen:Port above 1023");
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            return new Finding(Level.Fail, subject, "already in use (is Bridge already running?)", "stop the other program or set Bridge:Listen:Port");
        }
        catch (SocketException ex)
        {
            return new Finding(Level.Fail, subject, ex.Message, "check Bridge:Listen:Address");
        }
    }

    private static async Task<Finding> CheckStoreAsync(SmtpEndpoint endpoint, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            await using var connection = await SmtpConnection.OpenAsync(endpoint, timeout.Token).ConfigureAwait(false);
            await connection.QuitAsync(timeout.Token).ConfigureAwait(false);
            return new Finding(Level.Ok, $"store {endpoint}", $"answers ({connection.Greeting})");
        }
        catch (Exception ex) when (NetworkFailure.IsTransientOrTimeout(ex))
        {
            return new Finding(Level.Fail, $"store {endpoint}", ex.Message, "start the mail store or fix Bridge:Legacy:Host/Port/Protocol/Tls");
        }
    }
}