// Job: the daemon's collect socket (Bridge:Collect:Socket): Dovecot's post-login client (src/Bridge.DovecotCollect,
// installed as /usr/lib/bridge/dovecot-collect) connects at every IMAP and POP3 login and asks "COLLECT <login>"; the
// daemon collects that login's spool (LoginCollect) with its own locks, journal and store settings, and answers one
// line: "OK <moved>" (done, or nothing to do), "LATER <moved> <why>" (mail was left: time up, locked, store down). The
// common case, nothing waiting, costs one stat. Two logins of the same user at once share one collection (each
// message moves once, neither waits for another round). The socket is made as the LMTP socket is (UnixSocketFile:
// nobody who can write its directory can steer it) with SocketMode and SocketGroup: only root and Dovecot connect.
// Failure: a socket that cannot be made is logged and the daemon runs on without it (the logins then go on without
// collection; the daemon's own collector and the next logins take the mail); a request that is malformed or slower
// than a few seconds is closed; nothing a client sends can throw past the connection it came on.
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using Bridge.Configuration;
using Bridge.Delivery.Spool;
using Bridge.Delivery.Store;
using Bridge.Native;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Bridge.Collection;

public sealed partial class LoginCollectService(LiveSettings settings, StoreClient store, InProcessMailboxLocks locks, AppendJournal journal, ILogger logger)
    : BackgroundService
{
    /// <summary>The longest request line: "COLLECT " and a login.</summary>
    private const int MaxRequestBytes = 512;

    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(3);

    /// <summary>The most requests answered at once (each is one login waiting): more are closed at once, and those
    /// logins go on without collection; a flood of connections cannot use up the daemon's descriptors.</summary>
    public const int MaxConcurrentRequests = 64;

    private static readonly TimeSpan AcceptRetry = TimeSpan.FromMilliseconds(200);

    private readonly SemaphoreSlim _slots = new(MaxConcurrentRequests);
    private readonly ConcurrentDictionary<string, Task<CollectResult>> _running = new(StringComparer.Ordinal);
    private Socket? _listener;
    private OwnedSocketFile? _file;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        var options = settings.Current.Options.Collect;
        if (options.Socket.Length > 0)
        {
            Bind(options);
        }
        return base.StartAsync(cancellationToken);
    }

    private void Bind(CollectOptions options)
    {
        var parent = Path.GetDirectoryName(options.Socket);
        if (!string.IsNullOrEmpty(parent) && Libc.Lstat(parent, out _) != 0 && Libc.LastError == Libc.ENOENT)
        {
            Libc.MkdirAt(-100 /* AT_FDCWD */, parent, 0x1ED /* 0755 */); // /run/bridge outside systemd (the unit makes it)
        }
        _ = BridgeOptionsValidator.TryParseMode(options.SocketMode, out var mode); // validated with the configuration
        var gid = Libc.GetGroupId(options.SocketGroup) ?? Libc.Getegid();
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _file = UnixSocketFile.Bind(socket, options.Socket, (uint)mode, gid, 64, out var problem, out _);
        if (_file is null)
        {
            socket.Dispose();
            LogNoSocket(options.Socket, problem ?? "");
            return;
        }
        _listener = socket;
        LogListening(options.Socket, options.SocketMode, gid);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_listener is not { } listener)
        {
            return;
        }
        var failing = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(stoppingToken).ConfigureAwait(false);
                failing = false;
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex)
            {
                // Out of descriptors or buffers (EMFILE, ENFILE, ENOBUFS), a connection aborted before it was taken: all
                // pass. Logged once per spell, then accepting goes on after a pause, so later logins are answered again.
                if (!failing)
                {
                    LogAcceptFailed(ex.SocketErrorCode.ToString(), ex.Message);
                    failing = true;
                }
                try
                {
                    await Task.Delay(AcceptRetry, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            if (!_slots.Wait(0, CancellationToken.None))
            {
                client.Dispose(); // full: the client says "busy" and the login goes on at once
                continue;
            }
            _ = Task.Run(async () =>
            {
                try
                {
                    await AnswerAsync(client, stoppingToken).ConfigureAwait(false);
                }
                finally
                {
                    _slots.Release();
                }
            }, CancellationToken.None);
        }
    }

    private async Task AnswerAsync(Socket client, CancellationToken stoppingToken)
    {
        using (client)
        {
            try
            {
                var login = await ReadRequestAsync(client, stoppingToken).ConfigureAwait(false);
                if (login is null)
                {
                    await ReplyAsync(client, "NO bad request (COLLECT <login>)").ConfigureAwait(false);
                    return;
                }
                var result = await CollectAsync(login, stoppingToken).ConfigureAwait(false);
                foreach (var line in result.Lines)
                {
                    LogCollected(line);
                }
                await ReplyAsync(client, result.More ? $"LATER {result.Moved} {Printable(result.Line)}" : $"OK {result.Moved}").ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
            {
                // the client went away, or Bridge stops: the login goes on either way
            }
#pragma warning disable CA1031 // one login's collection must never take the service (and every later login's) down
            catch (Exception ex)
#pragma warning restore CA1031
            {
                LogFailed(ex);
                await ReplyAsync(client, "LATER 0 unexpected error, see Bridge's log").ConfigureAwait(false);
            }
        }
    }

    /// <summary>The login asked for, or null for anything but one line "COLLECT login" within RequestTimeout.</summary>
    private static async Task<string?> ReadRequestAsync(Socket client, CancellationToken stoppingToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        timeout.CancelAfter(RequestTimeout);
        var buffer = new byte[MaxRequestBytes];
        var got = 0;
        while (got < buffer.Length)
        {
            int n;
            try
            {
                n = await client.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
            {
                return null;
            }
            if (n == 0)
            {
                break;
            }
            got += n;
            if (Array.IndexOf(buffer, (byte)'\n', 0, got) >= 0)
            {
                break;
            }
        }
        var end = Array.IndexOf(buffer, (byte)'\n', 0, got);
        if (end < 0 || !Ascii.IsValid(buffer.AsSpan(0, end)))
        {
            return null;
        }
        var line = Encoding.ASCII.GetString(buffer, 0, end).TrimEnd('\r');
        return line.StartsWith("COLLECT ", StringComparison.Ordinal) && line.Length > 8 && line[8..].All(c => c is > ' ' and <= '~')
            ? line[8..]
            : null;
    }

    /// <summary>One collection per first short name at a time: a second login of the same user joins the running one.</summary>
    private Task<CollectResult> CollectAsync(string login, CancellationToken stoppingToken)
    {
        var snapshot = settings.Current;
        var (name, _) = LoginCollect.Target(snapshot, login);
        if (name is null)
        {
            return LoginCollect.RunAsync(snapshot, store, login, locks, journal, stoppingToken); // says why, at once
        }
        while (true)
        {
            if (_running.TryGetValue(name, out var running))
            {
                return running;
            }
            var mine = new TaskCompletionSource<CollectResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_running.TryAdd(name, mine.Task))
            {
                _ = RunAndForgetAsync(name, mine, snapshot, login, stoppingToken);
                return mine.Task;
            }
        }
    }

    private async Task RunAndForgetAsync(string name, TaskCompletionSource<CollectResult> done, SettingsSnapshot snapshot, string login, CancellationToken stoppingToken)
    {
        try
        {
            done.SetResult(await LoginCollect.RunAsync(snapshot, store, login, locks, journal, stoppingToken).ConfigureAwait(false));
        }
#pragma warning disable CA1031 // handed to every waiting login as its answer
        catch (Exception ex)
#pragma warning restore CA1031
        {
            done.SetException(ex);
        }
        finally
        {
            _running.TryRemove(new KeyValuePair<string, Task<CollectResult>>(name, done.Task));
        }
    }

    private static async Task ReplyAsync(Socket client, string line)
    {
        try
        {
            using var timeout = new CancellationTokenSource(RequestTimeout);
            await client.SendAsync(Encoding.ASCII.GetBytes(line + "\n"), SocketFlags.None, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // the login went on without waiting
        }
    }

    /// <summary>A reply line: printable ASCII only, bounded.</summary>
    private static string Printable(string text)
    {
        var clean = new string([.. text.Select(c => c is >= ' ' and <= '~' ? c : '?')]);
        return clean.Length <= 400 ? clean : clean[..400];
    }

    public override Task StopAsync(CancellationToken cancellationToken)
    {
        _listener?.Dispose();
        _file?.RemoveIfOurs();
        return base.StopAsync(cancellationToken);
    }

    public override void Dispose()
    {
        _listener?.Dispose();
        base.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "collect socket {Path} (mode {Mode}, gid {Gid}): Dovecot's post-login client asks here")]
    private partial void LogListening(string path, string mode, uint gid);

    [LoggerMessage(Level = LogLevel.Warning, Message = "collect socket {Path} not made ({Problem}); logins go on without collection (check Bridge:Collect:Socket)")]
    private partial void LogNoSocket(string path, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "collect socket: cannot accept a connection ({Error}: {Why}); trying again, logins go on meanwhile")]
    private partial void LogAcceptFailed(string error, string why);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Line}")]
    private partial void LogCollected(string line);

    [LoggerMessage(Level = LogLevel.Error, Message = "collect at login failed unexpectedly; the mail stays in the spool")]
    private partial void LogFailed(Exception exception);
}
