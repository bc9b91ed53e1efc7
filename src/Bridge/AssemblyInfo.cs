// Bridge delivers into /var/mail with Linux system calls (see Native/Libc.cs, which checks at start).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
