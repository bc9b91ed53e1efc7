// Job: the bridge executable; the verbs are in Hosting/CommandLine.cs. Exit codes follow sysexits:
// 78 configuration, 69 unavailable (port), 64 usage; `check` exits 1 when a finding FAILs.
// Failure: a configuration or bind problem prints one line to stderr and exits non-zero, without a stack trace.
Bridge.Hosting.SocketThreads.PreferInlineCompletions();
Bridge.Hosting.ConsoleLines.WriteWholeLines();
return await Bridge.Hosting.CommandLine.RunAsync(args);
