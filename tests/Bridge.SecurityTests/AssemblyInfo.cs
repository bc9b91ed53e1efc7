// Bridge delivers into /var/mail with Linux system calls; so do its tests.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
