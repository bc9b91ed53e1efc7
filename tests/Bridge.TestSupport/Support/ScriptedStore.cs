// Job: a mail store that breaks the protocol in ways no real store does on request (garbage bytes in a reply, 354
// as the final reply, UTF-8 reply text, a mailbox-full 452, hanging up after the BDAT chunk, resetting the connection
// part-way through the message, never greeting): a
// small python3 LMTP/SMTP server, one scenario per instance, counting the messages it received. Real stores
// (Dovecot, Postfix, smtp-sink) cover everything they can be made to do; this covers only what they cannot.
// Failure: python3 missing -> the install command; a server that does not say "ready" within 10 s fails the test.
using System.Diagnostics;

namespace Bridge.Tests.Support;

public sealed class ScriptedStore : IDisposable
{
    private const string Script = """
        import socket, struct, sys, threading, time
        port, scenario, counter = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        lock = threading.Lock()
        def received():
            with lock:
                with open(counter, 'a') as f:
                    f.write('1\n')
        RCPT = {
            'rcpt-garbage': b'550 5.1.1 bad\x00\xff\x07 user\r\n',
            'rcpt-utf8': '550 5.2.1 Bo\u00eete ferm\u00e9e\r\n'.encode('utf-8'),
            'rcpt-full': b'452 4.2.2 Mailbox full\r\n',
            'rcpt-451': b'451 4.3.0 Temporary lookup failure\r\n',
            'rcpt-354': b'354 what\r\n',
        }
        def handle(c):
            try:
                f = c.makefile('rb')
                if scenario == 'silent':
                    time.sleep(3600)
                c.sendall(b'220 scripted ESMTP\r\n')
                while True:
                    line = f.readline()
                    if not line:
                        return
                    cmd = line.strip().upper()
                    if cmd.startswith(b'LHLO') or cmd.startswith(b'EHLO'):
                        if scenario == 'bdat-drop':
                            c.sendall(b'250-scripted\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n')
                        else:
                            c.sendall(b'250-scripted\r\n250 8BITMIME\r\n')
                    elif cmd.startswith(b'MAIL'):
                        if scenario != 'bdat-drop':
                            c.sendall(b'250 2.1.0 Ok\r\n')
                    elif cmd.startswith(b'RCPT'):
                        if scenario != 'bdat-drop':
                            c.sendall(RCPT.get(scenario, b'250 2.1.5 Ok\r\n'))
                    elif cmd.startswith(b'BDAT'):
                        f.read(int(cmd.split()[1]))
                        received()
                        c.close()  # took the message, says nothing
                        return
                    elif cmd == b'DATA' and scenario == 'data-reset':
                        c.sendall(b'354 go ahead\r\n')
                        f.read(4096)  # a little of the message, then the store is gone: a reset, unread bytes dropped
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
                        c.close()
                        return
                    elif cmd == b'DATA':
                        c.sendall(b'354 go ahead\r\n')
                        while True:
                            l = f.readline()
                            if l in (b'.\r\n', b''):
                                break
                        received()
                        c.sendall(b'354 more please\r\n' if scenario == 'final-354' else b'250 2.0.0 Ok\r\n')
                    elif cmd == b'RSET':
                        c.sendall(b'250 2.0.0 Ok\r\n')
                    elif cmd == b'QUIT':
                        c.sendall(b'221 2.0.0 Bye\r\n')
                        return
                    else:
                        c.sendall(b'500 5.5.2 What\r\n')
            except OSError:
                pass
            finally:
                c.close()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', port))
        s.listen(64)
        print('ready', flush=True)
        while True:
            conn, _ = s.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
        """;

    private readonly Process _process;
    private readonly TempDir _dir;

    private ScriptedStore(Process process, TempDir dir, int port)
    {
        _process = process;
        _dir = dir;
        Port = port;
    }

    public int Port { get; }

    /// <summary>Messages the store received completely (whatever it answered).</summary>
    public int Received => File.Exists(_dir["count"]) ? File.ReadAllLines(_dir["count"]).Length : 0;

    public static async Task<ScriptedStore> StartAsync(string scenario)
    {
        var python = Peers.Require("python3", "python3");
        var dir = new TempDir();
        var port = FreePort.Next();
        var info = new ProcessStartInfo(python) { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (var arg in (string[])["-c", Script, port.ToString(System.Globalization.CultureInfo.InvariantCulture), scenario, dir["count"]])
        {
            info.ArgumentList.Add(arg);
        }
        var process = Process.Start(info)!;
        var ready = process.StandardOutput.ReadLineAsync();
        if (await Task.WhenAny(ready, Task.Delay(10_000)) != ready || await ready != "ready")
        {
            process.Kill();
            throw new InvalidOperationException("the scripted store did not start");
        }
        return new ScriptedStore(process, dir, port);
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            _process.WaitForExit();
        }
        _process.Dispose();
        _dir.Dispose();
    }
}
