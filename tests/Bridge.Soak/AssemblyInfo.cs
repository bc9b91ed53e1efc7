// The soak drives Linux peers (Postfix, Dovecot, tmpfs, /proc) and Bridge, which is Linux-only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
