// The peers and Bridge run on Linux only.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
