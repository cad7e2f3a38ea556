using System.Runtime.InteropServices;

namespace Swarm.Core.Storage;

internal static partial class NativeFile
{
    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string oldPath, string newPath);

    /// <summary>Creates a hard link; false when the platform or file system cannot (other device, no permission).</summary>
    public static bool TryHardLink(string existing, string link)
    {
        if (OperatingSystem.IsWindows()) return false;
        try
        {
            return Link(existing, link) == 0;
        }
        catch (DllNotFoundException)
        {
            return false;
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
    }
}
