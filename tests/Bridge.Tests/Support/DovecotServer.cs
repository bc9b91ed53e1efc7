// Job: a private, real Dovecot: IMAP reader of an mbox spool (INBOX=<spool>/%u), and later the LMTP store.
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

    private DovecotServer(TempDir dir, string config, int imapPort)
    {
        _dir = dir;
        _config = config;
        ImapPort = imapPort;
    }

    public int ImapPort { get; }

    public string LogPath => _dir["dovecot.log"];

    /// <summary>Starts Dovecot serving each user's INBOX from <paramref name="spoolDirectory"/>/user.</summary>
    public static async Task<DovecotServer> StartMboxReaderAsync(string spoolDirectory, params string[] users)
    {
        Peers.Require("dovecot", "dovecot-imapd");
        if (!File.Exists("/usr/lib/dovecot/imap"))
        {
            throw new InvalidOperationException("Dovecot's IMAP server is not installed: run ./test.sh or apt-get install -y dovecot-imapd");
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
        await File.WriteAllLinesAsync(dir["passwd"], passwd);
        var config = $$"""
            base_dir = {{dir["run"]}}
            log_path = {{dir["dovecot.log"]}}
            listen = 127.0.0.1
            ssl = no
            disable_plaintext_auth = no
            protocols = imap
            auth_mechanisms = plain
            service imap-login {
              inet_listener imap {
                port = {{imapPort}}
              }
              inet_listener imaps {
                port = 0
              }
            }
            passdb {
              driver = passwd-file
              args = {{dir["passwd"]}}
            }
            userdb {
              driver = passwd-file
              args = {{dir["passwd"]}}
            }
            mail_location = mbox:~/mail:INBOX={{spoolDirectory}}/%u
            """;
        var configPath = dir["dovecot.conf"];
        await File.WriteAllTextAsync(configPath, config);
        var rc = await Proc.RunDetachedAsync("dovecot", "-c", configPath);
        var server = new DovecotServer(dir, configPath, imapPort);
        if (rc != 0 || !await WaitForPortAsync(imapPort))
        {
            var log = File.Exists(server.LogPath) ? await File.ReadAllTextAsync(server.LogPath) : "(no log)";
            await server.DisposeAsync();
            throw new InvalidOperationException($"dovecot did not start (exit {rc}): {log}");
        }
        return server;
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

    internal static async Task<bool> WaitForPortAsync(int port)
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
        await Proc.RunAsync("doveadm", ["-c", _config, "stop"]);
        await Task.Delay(200);
        _dir.Dispose();
    }
}
