// Job: Dovecot's post-login "script" (deploy/dovecot/30-bridge-collect.conf runs it through script-login at every IMAP
// and POP3 login): ask the running Bridge, over its collect socket (Bridge:Collect:Socket, /run/bridge/collect), to
// collect the spool of the user Dovecot authenticated ($USER), wait for its one-line answer, then continue into the
// session by exec'ing what script-login passed as arguments (as a shell script's `exec "$@"`). Published with Native
// AOT: a login costs a few milliseconds and a few MB, not a .NET runtime start. The work itself (locks, store, time
// limit) is the daemon's; this only asks.
// stdin and stdout are the IMAP/POP3 client's connection here (script-login's doing): nothing is ever written to them.
// What the mail log should know goes to syslog (facility mail, tag mailbridge-collect), or to stderr without /dev/log.
// Failure: never stops a login: a daemon that is stopped, a missing socket, a full backlog or no answer within
// BRIDGE_COLLECT_TIMEOUT seconds (default 30; the daemon answers within Bridge:Legacy:LoginCollectTimeout) is logged
// and the session goes on at once; only an exec that fails (no session to go on to) ends with exit code 111.
using System.Runtime.InteropServices;
using System.Text;

namespace Bridge.DovecotCollect;

internal static unsafe partial class Program
{
    private const string DefaultSocket = "/run/bridge/collect";
    private const int DefaultTimeoutSeconds = 30;
    private const int AfUnix = 1, SockStream = 1, SockDgram = 2, SockNonblock = 0x800, SockCloexec = 0x80000, MsgNosignal = 0x4000;
    private const short PollIn = 0x1;
    private const int LogMailInfo = (2 << 3) | 6, LogMailWarning = (2 << 3) | 4;

    private static int Main(string[] args)
    {
        var login = Environment.GetEnvironmentVariable("USER") ?? "";
        var socket = Environment.GetEnvironmentVariable("BRIDGE_COLLECT_SOCKET") is { Length: > 0 } configured ? configured : DefaultSocket;
        var timeout = int.TryParse(Environment.GetEnvironmentVariable("BRIDGE_COLLECT_TIMEOUT"), out var seconds) && seconds is > 0 and <= 600
            ? seconds
            : DefaultTimeoutSeconds;
        var (asked, answer) = login.Length is > 0 and <= 320 && login.All(c => c is > ' ' and <= '~')
            ? Ask(socket, login, timeout)
            : (false, "no usable USER in the environment");
        if (!asked)
        {
            Log(LogMailWarning, $"{login}: not collected, the login goes on: {answer}");
        }
        else if (!answer.StartsWith("OK ", StringComparison.Ordinal))
        {
            Log(LogMailInfo, $"{login}: {answer}");
        }
        if (args.Length == 0)
        {
            Stderr(answer); // run by hand: say what the daemon said
            return asked ? 0 : 1;
        }
        Exec(args);
        Log(LogMailWarning, $"cannot run {args[0]}: errno {Marshal.GetLastPInvokeError()}");
        return 111;
    }

    /// <summary>One request, one answer line; (false, why) when the daemon could not be asked or did not answer in time.</summary>
    private static (bool Asked, string Answer) Ask(string path, string login, int timeoutSeconds)
    {
        var deadline = Environment.TickCount64 + (timeoutSeconds * 1000L);
        var fd = Socket(AfUnix, SockStream | SockNonblock | SockCloexec, 0);
        if (fd < 0)
        {
            return (false, $"socket: errno {Marshal.GetLastPInvokeError()}");
        }
        try
        {
            var address = Address(path);
            if (Connect(fd, address, address.Length) != 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                return (false, errno switch
                {
                    2 => $"{path} does not exist (is Bridge running? Bridge:Collect:Socket)",
                    111 => $"nothing listens on {path} (Bridge stopped)",
                    11 => $"{path} is busy",
                    13 => $"{path}: permission denied (Bridge:Collect:SocketGroup)",
                    _ => $"connect {path}: errno {errno}",
                });
            }
            var request = Encoding.ASCII.GetBytes($"COLLECT {login}\n");
            fixed (byte* p = request)
            {
                if (Send(fd, p, request.Length, MsgNosignal) != request.Length)
                {
                    return (false, $"send: errno {Marshal.GetLastPInvokeError()}");
                }
            }
            var reply = new List<byte>();
            var buffer = stackalloc byte[512];
            while (reply.Count < 4096)
            {
                var left = deadline - Environment.TickCount64;
                if (left <= 0)
                {
                    return (false, $"no answer within {timeoutSeconds} s (BRIDGE_COLLECT_TIMEOUT)");
                }
                var poll = new PollFd { Fd = fd, Events = PollIn };
                if (Poll(&poll, 1, (int)Math.Min(left, int.MaxValue)) <= 0)
                {
                    continue;
                }
                var n = Recv(fd, buffer, 512, 0);
                if (n <= 0)
                {
                    break;
                }
                for (var i = 0; i < n; i++)
                {
                    reply.Add(buffer[i]);
                }
                if (reply.Contains((byte)'\n'))
                {
                    break;
                }
            }
            var text = Encoding.ASCII.GetString([.. reply]).Split('\n')[0].TrimEnd('\r');
            return text.Length == 0 ? (false, "Bridge closed the connection without an answer") : (true, text);
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>struct sockaddr_un for <paramref name="path"/>.</summary>
    private static byte[] Address(string path)
    {
        var bytes = Encoding.UTF8.GetBytes(path);
        var address = new byte[2 + 108];
        address[0] = AfUnix; // sa_family_t, little-endian on x86_64 and arm64
        bytes.AsSpan(0, Math.Min(bytes.Length, 107)).CopyTo(address.AsSpan(2));
        return address;
    }

    /// <summary>One line to syslog's /dev/log (facility mail), or to stderr when there is no syslog.</summary>
    private static void Log(int priority, string message)
    {
        var line = Encoding.UTF8.GetBytes($"<{priority}>mailbridge-collect[{Environment.ProcessId}]: {message}");
        var fd = Socket(AfUnix, SockDgram | SockCloexec, 0);
        var sent = false;
        if (fd >= 0)
        {
            var address = Address("/dev/log");
            fixed (byte* p = line)
            {
                sent = SendTo(fd, p, line.Length, MsgNosignal, address, address.Length) == line.Length;
            }
            _ = Close(fd);
        }
        if (!sent)
        {
            Stderr($"mailbridge-collect: {message}");
        }
    }

    /// <summary>A line to fd 2 with write(2): the .NET console is never started (it would set up the terminal).</summary>
    private static void Stderr(string line)
    {
        var bytes = Encoding.UTF8.GetBytes(line + "\n");
        fixed (byte* p = bytes)
        {
            _ = Write(2, p, bytes.Length);
        }
    }

    /// <summary>execvp(args[0], args): returns only when it failed.</summary>
    private static void Exec(string[] args)
    {
        var argv = new nint[args.Length + 1];
        for (var i = 0; i < args.Length; i++)
        {
            argv[i] = Marshal.StringToCoTaskMemUTF8(args[i]);
        }
        fixed (nint* p = argv)
        {
            _ = Execvp(argv[0], p);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int Socket(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "connect", SetLastError = true)]
    private static partial int Connect(int fd, byte[] address, int length);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static partial nint Send(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "sendto", SetLastError = true)]
    private static partial nint SendTo(int fd, byte* buffer, nint length, int flags, byte[] address, int addressLength);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static partial nint Recv(int fd, byte* buffer, nint length, int flags);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int Poll(PollFd* fds, nuint count, int timeoutMilliseconds);

    [LibraryImport("libc", EntryPoint = "write")]
    private static partial nint Write(int fd, byte* buffer, nint length);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "execvp", SetLastError = true)]
    private static partial int Execvp(nint file, nint* argv);
}
