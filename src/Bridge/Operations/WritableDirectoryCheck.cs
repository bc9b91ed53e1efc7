// Job: whether Bridge (its effective uid) can create files in a directory, as a dotlock or a journal entry would be
// created: one file made O_EXCL|O_NOFOLLOW and removed again.
// Failure: none thrown; a Finding (FAIL with the errno's text and the key to change).
using Bridge.Native;

namespace Bridge.Operations;

internal static class WritableDirectoryCheck
{
    /// <summary>Creates and removes a file, as a dotlock or a journal entry would be.</summary>
    public static Finding Run(string what, string path, string key)
    {
        var subject = $"{what} {path}";
        var probe = Path.Combine(path, $".bridge-check-{Environment.ProcessId}");
        var fd = Libc.Open(probe, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0x180);
        if (fd < 0)
        {
            var error = Libc.LastError;
            if (error == Libc.ENOENT && what == "journal")
            {
                return new Finding(Level.Ok, subject, "will be created at start");
            }
            return new Finding(Level.Fail, subject, $"Bridge (uid {Libc.Geteuid()}) cannot create files here: {Libc.Describe(error)}",
                $"give Bridge's user write access, or set {key}");
        }
        Libc.Close(fd);
        Libc.Unlink(probe);
        return new Finding(Level.Ok, subject, $"Bridge (uid {Libc.Geteuid()}) can create files here");
    }
}
