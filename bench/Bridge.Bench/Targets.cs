// Job: the systems under test, each started once and reused for every run: Bridge in spool mode (over SMTP on its
// port, and over LMTP on its Unix socket: the same process and mailbox), Bridge in legacy mode in front of a Dovecot
// LMTP store, Postfix smtpd -> local(8) -> mbox, Dovecot LMTP on its own, and
// smtp-sink (SMTP on a port, and LMTP with -L on a Unix socket). Each knows where its deliveries land, so a run is timed until the last message is there.
// Failure: a peer that does not start throws with its log (the benchmark stops rather than report a half run).
using System.Diagnostics;
using Bridge.Tests.Support;

namespace Bridge.Bench;

internal abstract class Target : IAsyncDisposable
{
    public const string Domain = "bench.test";

    public abstract string Name { get; }

    public abstract int Port { get; }

    /// <summary>smtp-source's server argument: host:port, or unix:PATH.</summary>
    public virtual string Server => $"127.0.0.1:{Port}";

    public virtual bool Lmtp => false;

    public virtual string Recipient => $"{TestAccounts.Alice}@{Domain}";

    /// <summary>Messages delivered so far; null when the reply itself is the end of the job (smtp-sink).</summary>
    public abstract long? Delivered();

    /// <summary>Between runs: start from an empty mailbox.</summary>
    public virtual Task ResetAsync() => Task.CompletedTask;

    public abstract ValueTask DisposeAsync();

    protected static void DeleteMailbox(string path)
    {
        File.Delete(path);
        File.Delete(path + ".lock");
    }
}

/// <summary>Bridge as its own process, from a copy of the Release build, configured through appsettings.json.</summary>
internal sealed class BridgeTarget : Target
{
    private readonly TempDir _root;
    private readonly TempDir _spool;
    private readonly TempDir _journal;
    private readonly BridgeProcess _process;
    private readonly DovecotServer? _store;
    private readonly MboxCounter _mbox;
    private readonly int _port;

    private BridgeTarget(TempDir root, TempDir spool, TempDir journal, BridgeProcess process, DovecotServer? store, int port)
    {
        _root = root;
        _spool = spool;
        _journal = journal;
        _process = process;
        _store = store;
        _port = port;
        _mbox = new MboxCounter(MailboxPath);
    }

    public override string Name => _store is null ? "Bridge spool" : "Bridge legacy";

    public override int Port => _port;

    public int Pid => _process.Pid;

    /// <summary>The Dovecot legacy mode relays to (null in spool mode).</summary>
    public DovecotServer? Store => _store;

    public string MailboxPath => MailboxOf(TestAccounts.Alice);

    /// <summary>Bridge's LMTP socket (Bridge:Lmtp:Socket), beside the SMTP port: in an LMTP front's private/ when the
    /// chains run (as deploy/postfix/main.cf.lmtp has it), else in Bridge's own folder.</summary>
    public string LmtpSocket { get; private init; } = "";

    public string MailboxOf(string user) => _spool[user];

    /// <param name="lmtpSocket">Where Bridge's LMTP socket goes (group postfix, so Postfix's lmtp(8) may connect); null:
    /// Bridge's own folder.</param>
    public static async Task<BridgeTarget> StartSpoolAsync(string? lmtpSocket = null) => await StartAsync(null, lmtpSocket);

    public static async Task<BridgeTarget> StartLegacyAsync(string? lmtpSocket = null) =>
        await StartAsync(await DovecotServer.StartStoreAsync(0, TestAccounts.Alice), lmtpSocket);

    private static async Task<BridgeTarget> StartAsync(DovecotServer? store, string? lmtpSocket)
    {
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        var root = new TempDir("bridge-bench");
        var spool = new TempDir("bridge-bench-spool", TempDir.Mode("1777"));
        // The journal lives apart from the configuration, as in the package (/var/lib/bridge/journal, /etc/bridge):
        // the host watches the configuration's directory tree for changes, and every journal entry would wake it.
        var journal = new TempDir("bridge-bench-journal");
        var port = FreePort.Next();
        var socket = lmtpSocket ?? root["lmtp"];
        var legacy = store is null ? "" : $$"""
            "Mode": "Legacy", "Legacy": { "Host": "127.0.0.1", "Port": {{store.LmtpPort}}, "Protocol": "Lmtp" },
            """;
        await File.WriteAllTextAsync(root["appsettings.json"], $$"""
            {
              "Logging": { "LogLevel": { "Default": "Information", "Microsoft.Hosting.Lifetime": "Warning" } },
              "Bridge": {
                "Listen": { "Port": {{port}} }, "Lmtp": { "Socket": "{{socket}}", "SocketGroup": "postfix" }, {{legacy}}
                "LocalDomains": [ "{{Domain}}" ],
                "Spool": { "Directory": "{{spool.Path}}", "JournalDirectory": "{{journal.Path}}", "MaxMailboxBytes": 0 }
              }
            }
            """);
        var process = await BridgeProcess.StartAsync(root, null);
        return new BridgeTarget(root, spool, journal, process, store, port) { LmtpSocket = socket };
    }

    public override long? Delivered() => _store is null ? _mbox.Count() : MaildirCount(_store, TestAccounts.Alice);

    public override Task ResetAsync()
    {
        if (_store is null)
        {
            DeleteMailbox(MailboxPath);
        }
        else
        {
            DeleteMaildir(_store, TestAccounts.Alice);
        }
        return Task.CompletedTask;
    }

    public override async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        if (_store is not null)
        {
            await _store.DisposeAsync();
        }
        _root.Dispose();
        _spool.Dispose();
        _journal.Dispose();
    }

    private static readonly string[] MaildirFolders = ["new", "cur"];

    /// <summary>Dovecot's cost per delivery grows with the Maildir (it syncs its index against the folder), so every run starts empty.</summary>
    internal static void DeleteMaildir(DovecotServer store, string user)
    {
        var maildir = Path.Combine(store.HomeOf(user), "Maildir");
        if (Directory.Exists(maildir))
        {
            Directory.Delete(maildir, recursive: true);
        }
    }

    internal static long MaildirCount(DovecotServer store, string user)
    {
        var maildir = Path.Combine(store.HomeOf(user), "Maildir");
        return MaildirFolders.Select(d => Path.Combine(maildir, d)).Where(Directory.Exists).Sum(d => (long)Directory.GetFiles(d).Length);
    }
}

/// <summary>The spool-mode Bridge again, reached over LMTP on its Unix socket instead of SMTP on its port (same process,
/// same mailbox): what the socket and LMTP's per-recipient replies cost or save against SMTP over TCP.</summary>
internal sealed class BridgeLmtpTarget(BridgeTarget spool) : Target
{
    public override string Name => "Bridge spool LMTP";

    public override int Port => spool.Port;

    public override string Server => $"unix:{spool.LmtpSocket}";

    public override bool Lmtp => true;

    public override long? Delivered() => spool.Delivered();

    public override Task ResetAsync() => spool.ResetAsync();

    public override ValueTask DisposeAsync() => ValueTask.CompletedTask; // the spool target owns the process
}

/// <summary>A real Postfix as the final destination: smtpd, cleanup, qmgr, local(8) into an mbox (its defaults otherwise).</summary>
internal sealed class PostfixLocalTarget : Target
{
    private readonly PostfixServer _postfix;
    private readonly TempDir _spool;
    private readonly MboxCounter _mbox;

    private PostfixLocalTarget(PostfixServer postfix, TempDir spool)
    {
        _postfix = postfix;
        _spool = spool;
        _mbox = new MboxCounter(spool[TestAccounts.Alice]);
    }

    public override string Name => "Postfix local(8)";

    public override int Port => _postfix.SmtpPort;

    public static async Task<PostfixLocalTarget> StartAsync()
    {
        await TestAccounts.EnsureAsync(TestAccounts.Alice);
        var spool = new TempDir("bridge-bench-postfix-spool", TempDir.Mode("1777"));
        return new PostfixLocalTarget(await PostfixServer.StartLocalDeliveryAsync(Domain, spool.Path), spool);
    }

    public override long? Delivered() => _mbox.Count();

    public override Task ResetAsync()
    {
        DeleteMailbox(_spool[TestAccounts.Alice]);
        return Task.CompletedTask;
    }

    public override async ValueTask DisposeAsync()
    {
        await _postfix.DisposeAsync();
        _spool.Dispose();
    }
}

/// <summary>Dovecot's LMTP server with a Maildir store, the target legacy mode relays to, driven directly.</summary>
internal sealed class DovecotLmtpTarget(DovecotServer store) : Target
{
    public override string Name => "Dovecot LMTP";

    public DovecotServer Store => store;

    public override int Port => store.LmtpPort;

    public override bool Lmtp => true;

    public override string Recipient => TestAccounts.Alice;

    public static async Task<DovecotLmtpTarget> StartAsync() => new(await DovecotServer.StartStoreAsync(0, TestAccounts.Alice));

    public override long? Delivered() => BridgeTarget.MaildirCount(store, TestAccounts.Alice);

    public override Task ResetAsync()
    {
        BridgeTarget.DeleteMaildir(store, TestAccounts.Alice);
        return Task.CompletedTask;
    }

    public override ValueTask DisposeAsync() => store.DisposeAsync();
}

/// <summary>Postfix's smtp-sink: accepts and discards, the ceiling for SMTP intake on this machine; with -L on a Unix
/// socket, the ceiling for LMTP intake there.</summary>
internal sealed class SmtpSinkTarget : Target
{
    private readonly Process _process;
    private readonly int _port;
    private readonly string? _socket;

    private SmtpSinkTarget(Process process, int port, string? socket = null)
    {
        _process = process;
        _port = port;
        _socket = socket;
    }

    public override string Name => _socket is null ? "smtp-sink" : "smtp-sink -L";

    public override string Server => _socket is null ? base.Server : $"unix:{_socket}";

    public override bool Lmtp => _socket is not null;

    public int Pid => _process.Id;

    public override int Port => _port;

    public static async Task<SmtpSinkTarget> StartAsync()
    {
        var port = FreePort.Next();
        var process = Launch("-u", "nobody", $"127.0.0.1:{port}", "256");
        if (!await DovecotServer.WaitForPortAsync(port))
        {
            process.Kill();
            throw new InvalidOperationException($"smtp-sink did not start: {await process.StandardError.ReadToEndAsync()}");
        }
        return new SmtpSinkTarget(process, port);
    }

    /// <summary>smtp-sink speaking LMTP (-L) on the Unix socket <paramref name="socket"/>, which anyone may connect to
    /// (it runs as nobody; Postfix's lmtp(8) connects as postfix).</summary>
    public static async Task<SmtpSinkTarget> StartLmtpAsync(string socket)
    {
        var process = Launch("-L", "-u", "nobody", $"unix:{socket}", "256");
        for (var i = 0; i < 100 && !File.Exists(socket) && !process.HasExited; i++)
        {
            await Task.Delay(50);
        }
        if (!File.Exists(socket))
        {
            process.Kill();
            throw new InvalidOperationException($"smtp-sink -L did not make its socket {socket}: {await process.StandardError.ReadToEndAsync()}");
        }
        File.SetUnixFileMode(socket, TempDir.Mode("666"));
        return new SmtpSinkTarget(process, 0, socket);
    }

    /// <summary>smtp-sink with <paramref name="args"/>, its output kept for a start that fails.</summary>
    private static Process Launch(params string[] args) =>
        Process.Start(new ProcessStartInfo(Peers.Require("smtp-sink", "postfix"), args) { RedirectStandardOutput = true, RedirectStandardError = true })!;

    public override long? Delivered() => null;

    public override async ValueTask DisposeAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}
