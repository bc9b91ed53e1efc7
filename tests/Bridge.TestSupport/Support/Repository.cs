// Job: find this checkout (the folder with Bridge.sln above the test binaries), for tests that run its scripts or
// read its README.
// Failure: binaries outside a checkout fail the test saying so.
namespace Bridge.Tests.Support;

public static class Repository
{
    public static string Root
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Bridge.sln")))
                {
                    return dir.FullName;
                }
            }
            throw new InvalidOperationException("the repository (Bridge.sln) is not above the test binaries");
        }
    }
}
