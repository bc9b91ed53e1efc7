// Job: a private, real Dovecot: IMAP reader of an mbox spool (INBOX=<spool>/%u), or the mail store of
// Legacy mode (LMTP in, Maildir, IMAP out), which tests can stop and start again on the same ports.
// Users come from a passwd-file with their real uid, because Dovecot refuses to run mail processes as root.
// Failure: a Dovecot that does not start fails the test with its log.
using MailKit;
using MailKit.Net.Imap;
using MailKit.Security;

namespace Bridge.Tests.Support;

public sealed class DovecotServer : IAsyncDisposable
{
    public const string Password = "secret";

    private readonly string _config;
    private readonly TempDir _dir;

    private DovecotServer(TempDir dir, string config, int imapPort, int lmtpPort, int lmtpsPort)
    {
        _dir = dir;
        _config = config;
        ImapPort = imapPort;
        LmtpPort = lmtpPort;
        LmtpsPort = lmtpsPort;
    }

    /// <summary>The SMTP submission port (AUTH required) when started with submission (0 otherwise).</summary>
    public int SubmissionPort { get; private init; }

    /// <summary>The implicit-TLS LMTP port when started with TLS (0 otherwise).</summary>
    public int LmtpsPort { get; }

    /// <summary>The store's self-signed certificate (PEM) when started with TLS.</summary>
    public string CertificatePath => _dir["cert.pem"];

    public int ImapPort { get; }

    /// <summary>POP3 (plain, 127.0.0.1), when started with it; 0 otherwise.</summary>
    public int Pop3Port { get; private init; }

    /// <summary>The LMTP port when started as a store (0 otherwise).</summary>
    public int LmtpPort { get; }

    public string LogPath => _dir["dovecot.log"];

    /// <summary>This Dovecot's configuration file (for `bridge check --dovecot-config`).</summary>
    public string ConfigPath => _config;

    /// <summary>The pid of this Dovecot's master process (its services are its children).</summary>
    public int MasterPid => int.Parse(File.ReadAllText(Path.Combine(_dir["run"], "master.pid")).Trim(), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>LMTP connections the store has accepted so far, not counting the start-up probe (which hangs up
    /// at the greeting).</summary>
    public int LmtpConnections
    {
        get
        {
            var log = Log.Split('\n');
            return log.Count(l => l.Contains("lmtp(", StringComparison.Ordinal) && l.Contains("Connect from", StringComparison.Ordinal)) -
                   log.Count(l => l.Contains("lmtp(", StringComparison.Ordinal) && l.Contains("(state=GREETING)", StringComparison.Ordinal));
        }
    }

    /// <summary>The user's home (Maildir lives below it when Dovecot is the store).</summary>
    public string HomeOf(string user) => _dir["home-" + user];

    public string Log => File.Exists(LogPath) ? File.ReadAllText(LogPath) : "";

    /// <summary>Starts Dovecot serving each user's INBOX from <paramref name="spoolDirectory"/>/user.</summary>
    /// <remarks>Configured with deploy/dovecot/10-bridge-spool.conf, /var/mail replaced by the test's spool.</remarks>
    public static Task<DovecotServer> StartMboxReaderAsync(string spoolDirectory, params string[] users) =>
        StartAsync(Deploy("10-bridge-spool.conf", ("/var/mail/", spoolDirectory + "/")), lmtp: false, lmtpPort: 0, tls: false, 0, users);

    /// <summary>Starts Dovecot as the mail store: LMTP in (on <paramref name="lmtpPort"/>, or a free port), Maildir, IMAP out.</summary>
    public static Task<DovecotServer> StartStoreAsync(int lmtpPort = 0, params string[] users) =>
        StartAsync(MaildirStore, lmtp: true, lmtpPort == 0 ? FreePort.Next() : lmtpPort, tls: false, 0, users);

    private const string MaildirStore = "mail_location = maildir:~/Maildir";

    /// <summary>A file of deploy/dovecot with test paths or ports put in.</summary>
    private static string Deploy(string file, params (string From, string To)[] replacements)
    {
        var text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "deploy", "dovecot", file));
        foreach (var (from, to) in replacements)
        {
            Assert.Contains(from, text, StringComparison.Ordinal);
            text = text.Replace(from, to, StringComparison.Ordinal);
        }
        return text;
    }

    /// <summary>The store with an SMTP submission service too (AUTH PLAIN as a user, password Password), which
    /// relays what it accepts to <paramref name="relayPort"/> (e.g. a Postfix store front that LMTPs back here).</summary>
    public static Task<DovecotServer> StartStoreWithSubmissionAsync(int lmtpPort, int relayPort, params string[] users) =>
        StartAsync(MaildirStore, lmtp: true, lmtpPort, tls: false, relayPort, users);

    /// <summary>The store with TLS: STARTTLS on the LMTP port, implicit TLS on LmtpsPort, a fresh self-signed certificate for 127.0.0.1.</summary>
    public static Task<DovecotServer> StartTlsStoreAsync(params string[] users) =>
        StartAsync(MaildirStore, lmtp: true, FreePort.Next(), tls: true, 0, users);

    /// <summary>The store with IMAP and POP3 logins that first run <paramref name="collectScript"/> as Dovecot's post-login
    /// script, configured with deploy/dovecot/30-bridge-collect.conf (only the script's path changed). Each
    /// <paramref name="otherLogins"/> entry is one more login name for a user (same uid and home), as the note's users
    /// log in with any of their short names.</summary>
    public static Task<DovecotServer> StartStoreWithLoginCollectAsync(string collectScript, IReadOnlyList<(string Login, string User)> otherLogins,
        params string[] users) =>
        StartAsync(MaildirStore + "\n" + Deploy("30-bridge-collect.conf", ("/usr/lib/bridge/dovecot-collect", collectScript)),
            lmtp: true, FreePort.Next(), tls: false, 0, users, pop3: true, otherLogins);

    /// <summary>The store with IMAP and POP3 logins configured by <paramref name="postLoginConfiguration"/> (service
    /// definitions, e.g. an older or alternative post-login script; the benchmark compares them).</summary>
    public static Task<DovecotServer> StartStoreWithPostLoginAsync(string postLoginConfiguration, params string[] users) =>
        StartAsync(MaildirStore + "\n" + postLoginConfiguration, lmtp: true, FreePort.Next(), tls: false, 0, users, pop3: true);

    /// <param name="mailSettings">mail_location and related settings (deploy/dovecot/10-bridge-spool.conf, or a Maildir store).</param>
    private static async Task<DovecotServer> StartAsync(string mailSettings, bool lmtp, int lmtpPort, bool tls, int submissionRelayPort,
        string[] users, bool pop3 = false, IReadOnlyList<(string Login, string User)>? otherLogins = null)
    {
        if (submissionRelayPort != 0 && !File.Exists("/usr/lib/dovecot/submission"))
        {
            throw new InvalidOperationException("Dovecot's submission server is not installed: run ./test.sh or apt-get install -y dovecot-submissiond");
        }
        Peers.Require("dovecot", "dovecot-imapd");
        foreach (var (program, package) in new[] { ("imap", "dovecot-imapd"), ("lmtp", "dovecot-lmtpd") })
        {
            if ((program == "imap" || lmtp) && !File.Exists($"/usr/lib/dovecot/{program}"))
            {
                throw new InvalidOperationException($"Dovecot's {program} server is not installed: run ./test.sh or apt-get install -y {package}");
            }
        }
        var dir = new TempDir("bridge-dovecot");
        var imapPort = FreePort.Next();
        var passwd = new List<string>();
        foreach (var user in users)
        {
            var (uid, gid) = await TestAccounts.EnsureAsync(user);
            var home = dir.CreateSubdirectory("home-" + user, "700");
            await Proc.RunAsync("chown", [$"{uid}:{gid}", home]);
            passwd.Add($"{user}:{{PLAIN}}{Password}:{uid}:{gid}::{home}::");
        }
        foreach (var (login, user) in otherLogins ?? [])
        {
            var (uid, gid) = await TestAccounts.EnsureAsync(user);
            passwd.Add($"{login}:{{PLAIN}}{Password}:{uid}:{gid}::{dir["home-" + user]}::");
        }
        await File.WriteAllLinesAsync(dir["passwd"], passwd);
        var pop3Port = pop3 ? FreePort.Next() : 0;
        var pop3Service = !pop3 ? "" : $$"""
            service pop3-login {
              inet_listener pop3 {
                port = {{pop3Port}}
              }
              inet_listener pop3s {
                port = 0
              }
            }
            pop3_uidl_format = %08Xu%08Xv
            """;
        var lmtpsPort = tls ? FreePort.Next() : 0;
        var ssl = "ssl = no";
        if (tls)
        {
            var openssl = await Proc.RunAsync(Peers.Require("openssl", "openssl"), ["req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-keyout", dir["key.pem"], "-out", dir["cert.pem"], "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]);
            Assert.True(openssl.ExitCode == 0, openssl.Output);
            ssl = $"ssl = yes\nssl_cert = <{dir["cert.pem"]}\nssl_key = <{dir["key.pem"]}";
        }
        var lmtpsListener = tls ? $$"""
              inet_listener lmtps {
                address = 127.0.0.1
                port = {{lmtpsPort}}
                ssl = yes
              }
            """ : "";
        var lmtpService = !lmtp ? "" : !tls ? Deploy("20-bridge-lmtp.conf", ("port = 24", $"port = {lmtpPort}")) : $$"""
            protocols = $protocols lmtp
            auth_username_format = %Ln
            recipient_delimiter = +
            service lmtp {
              inet_listener lmtp {
                address = 127.0.0.1
                port = {{lmtpPort}}
              }
            {{lmtpsListener}}
            }
            """;
        var submissionPort = submissionRelayPort != 0 ? FreePort.Next() : 0;
        var submission = submissionRelayPort == 0 ? "" : $$"""
            hostname = store.test
            submission_relay_host = 127.0.0.1
            submission_relay_port = {{submissionRelayPort}}
            service submission-login {
              inet_listener submission {
                address = 127.0.0.1
                port = {{submissionPort}}
              }
            }
            """;
        var config = $$"""
            base_dir = {{dir["run"]}}
            log_path = {{dir["dovecot.log"]}}
            listen = 127.0.0.1
            {{ssl}}
            disable_plaintext_auth = no
            protocols = imap{{(pop3 ? " pop3" : "")}}{{(submissionRelayPort != 0 ? " submission" : "")}}
            auth_mechanisms = plain
            lmtp_save_to_detail_mailbox = no
            service imap-login {
              inet_listener imap {
                port = {{imapPort}}
              }
              inet_listener imaps {
                port = 0
              }
            }
            {{lmtpService}}
            {{submission}}
            {{pop3Service}}
            passdb {
              driver = passwd-file
              args = {{dir["passwd"]}}
            }
            userdb {
              driver = passwd-file
              args = {{dir["passwd"]}}
            }
            {{mailSettings}}
            """;
        var configPath = dir["dovecot.conf"];
        await File.WriteAllTextAsync(configPath, config);
        var server = new DovecotServer(dir, configPath, imapPort, lmtp ? lmtpPort : 0, lmtpsPort) { SubmissionPort = submissionPort, Pop3Port = pop3Port };
        try
        {
            await server.StartAgainAsync();
        }
        catch
        {
            dir.Dispose();
            throw;
        }
        return server;
    }

    /// <summary>Starts (or restarts after StopAsync) this instance on the same ports.</summary>
    public async Task StartAgainAsync()
    {
        var rc = await Proc.RunDetachedAsync("dovecot", "-c", _config);
        if (rc != 0 || !await WaitForPortAsync(ImapPort) || (LmtpPort != 0 && !await WaitForPortAsync(LmtpPort))
            || (SubmissionPort != 0 && !await WaitForPortAsync(SubmissionPort)))
        {
            throw new InvalidOperationException($"dovecot did not start (exit {rc}): {Log}");
        }
    }

    /// <summary>Stops Dovecot and waits until its ports are closed.</summary>
    public async Task StopAsync()
    {
        await Proc.RunAsync("doveadm", ["-c", _config, "stop"]);
        for (var i = 0; i < 100 && (await IsListeningAsync(ImapPort) || (LmtpPort != 0 && await IsListeningAsync(LmtpPort))); i++)
        {
            await Task.Delay(100);
        }
    }

    /// <summary>Every message of the user's INBOX, byte for byte as IMAP BODY[] returns it.</summary>
    public async Task<IReadOnlyList<byte[]>> FetchInboxAsync(string user)
    {
        using var client = new ImapClient();
        await client.ConnectAsync("127.0.0.1", ImapPort, SecureSocketOptions.None);
        await client.AuthenticateAsync(user, Password);
        var inbox = client.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadOnly);
        var messages = new List<byte[]>();
        for (var i = 0; i < inbox.Count; i++)
        {
            await using var stream = await inbox.GetStreamAsync(i, "");
            using var copy = new MemoryStream();
            await stream.CopyToAsync(copy);
            messages.Add(copy.ToArray());
        }
        await client.DisconnectAsync(true);
        return messages;
    }

    private static async Task<bool> IsListeningAsync(int port)
    {
        try
        {
            using var probe = new System.Net.Sockets.TcpClient();
            await probe.ConnectAsync(System.Net.IPAddress.Loopback, port);
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    public static async Task<bool> WaitForPortAsync(int port)
    {
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var probe = new System.Net.Sockets.TcpClient();
                await probe.ConnectAsync(System.Net.IPAddress.Loopback, port);
                return true;
            }
            catch (System.Net.Sockets.SocketException)
            {
                await Task.Delay(100);
            }
        }
        return false;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _dir.Dispose();
    }
}
