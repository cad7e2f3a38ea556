using System.Runtime.InteropServices;

namespace Swarm.Core.Storage;

internal static partial class NativeFile
{
    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string oldPath, string newPath);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirFd, string path, int flags, uint mask, ref byte buffer);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(Microsoft.Win32.SafeHandles.SafeFileHandle fd, string path, int flags, uint mask, ref byte buffer);

    private const int ReadWrite = 2, Direct = 0x4000, CloseOnExec = 0x80000; // Linux x86-64 / arm64 values
    private const int WriteOnly = 1, NoControllingTty = 0x100;
    // statx(2): the same layout on every Linux architecture, unlike struct stat.
    private const int AtFdCwd = -100, AtSymlinkNoFollow = 0x100, AtEmptyPath = 0x1000;
    private const uint StatxType = 1, StatxMode = 2;
    private const int StatxSize = 256, StatxModeOffset = 28, StatxRdevMajorOffset = 128, StatxRdevMinorOffset = 132;
    private const int ENOENT = 2;

    /// <summary>
    /// The type and mode of <paramref name="path"/> (of the link itself unless <paramref name="followLinks"/>), or
    /// <see cref="UnixFileStatus.Missing"/> when nothing is there; the errno on any other failure.
    /// </summary>
    public static UnixFileStatus Stat(string path, bool followLinks, out int errno)
    {
        errno = 0;
        if (!OperatingSystem.IsLinux()) return StatPortable(path, followLinks);
        Span<byte> buffer = stackalloc byte[StatxSize];
        buffer.Clear();
        if (Statx(AtFdCwd, path, followLinks ? 0 : AtSymlinkNoFollow, StatxType | StatxMode, ref buffer[0]) == 0) return Decode(buffer);
        int error = Marshal.GetLastPInvokeError();
        errno = error == ENOENT ? 0 : error;
        return UnixFileStatus.Missing;
    }

    /// <summary>The type and mode of an open file.</summary>
    public static UnixFileStatus Stat(Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        if (!OperatingSystem.IsLinux()) return new UnixFileStatus(UnixFileType.Unknown, 0, 0, 0);
        Span<byte> buffer = stackalloc byte[StatxSize];
        buffer.Clear();
        if (Statx(handle, "", AtEmptyPath, StatxType | StatxMode, ref buffer[0]) != 0)
            throw new IOException($"cannot look at an open file ({Marshal.GetLastPInvokeErrorMessage()})");
        return Decode(buffer);
    }

    private static UnixFileStatus Decode(ReadOnlySpan<byte> buffer)
    {
        int mode = MemoryMarshal.Read<ushort>(buffer[StatxModeOffset..]); // native byte order, as the kernel wrote it
        var type = (mode & 0xF000) switch
        {
            0x8000 => UnixFileType.Regular,
            0x4000 => UnixFileType.Directory,
            0xA000 => UnixFileType.Symlink,
            0x1000 => UnixFileType.Fifo,
            0x2000 => UnixFileType.CharacterDevice,
            0x6000 => UnixFileType.BlockDevice,
            0xC000 => UnixFileType.Socket,
            _ => UnixFileType.Unknown,
        };
        uint major = MemoryMarshal.Read<uint>(buffer[StatxRdevMajorOffset..]);
        uint minor = MemoryMarshal.Read<uint>(buffer[StatxRdevMinorOffset..]);
        return new UnixFileStatus(type, mode & 0xFFF, major, minor);
    }

    /// <summary>Where statx is not available: what .NET can tell (no FIFOs or devices).</summary>
    private static UnixFileStatus StatPortable(string path, bool followLinks)
    {
        var info = new FileInfo(path);
        if (!followLinks && info.LinkTarget != null) return new UnixFileStatus(UnixFileType.Symlink, 0, 0, 0);
        if (Directory.Exists(path)) return new UnixFileStatus(UnixFileType.Directory, 0, 0, 0);
        return File.Exists(path) ? new UnixFileStatus(UnixFileType.Regular, 0, 0, 0) : UnixFileStatus.Missing;
    }

    /// <summary>
    /// open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC), following symbolic links, creating nothing: what curl does with a FIFO or
    /// a device. Returns null and the errno on failure.
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle? OpenForWriting(string path, out int errno, out string error)
    {
        int fd = Open(path, WriteOnly | NoControllingTty | CloseOnExec, 0);
        if (fd >= 0)
        {
            errno = 0;
            error = "";
            return new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        }
        errno = Marshal.GetLastPInvokeError();
        error = Marshal.GetLastPInvokeErrorMessage();
        return null;
    }

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
