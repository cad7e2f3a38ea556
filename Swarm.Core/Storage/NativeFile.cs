using System.Runtime.InteropServices;

namespace Swarm.Core.Storage;

internal static partial class NativeFile
{
    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string oldPath, string newPath);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    private const int ReadWrite = 2, Direct = 0x4000, CloseOnExec = 0x80000; // Linux x86-64 / arm64 values

    /// <summary>
    /// Opens an existing file for writing with O_DIRECT (writes go to the device without a page-cache copy), or returns
    /// null where that is not possible (not Linux, or a file system such as tmpfs that refuses O_DIRECT).
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle? TryOpenDirect(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            int fd = Open(path, ReadWrite | Direct | CloseOnExec, 0);
            return fd < 0 ? null : new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

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
