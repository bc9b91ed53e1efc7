// The benchmark drives Linux peers (Postfix, Dovecot, /proc) and Bridge, which is Linux-only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
