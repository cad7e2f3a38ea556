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

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(Microsoft.Win32.SafeHandles.SafeFileHandle fd, int command, int argument);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static unsafe partial nint Write(Microsoft.Win32.SafeHandles.SafeFileHandle fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(Microsoft.Win32.SafeHandles.SafeFileHandle fd);

    [LibraryImport("libc", EntryPoint = "linkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LinkAt(int oldDirFd, string oldPath, int newDirFd, string newPath, int flags);

    [LibraryImport("libc", EntryPoint = "rename", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Rename(string oldPath, string newPath);

    [LibraryImport("libc", EntryPoint = "unlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Unlink(string path);

    private const int ReadWrite = 2, Direct = 0x4000, CloseOnExec = 0x80000; // Linux x86-64 / arm64 values
    private const int WriteOnly = 1, NoControllingTty = 0x100;
    private const int AccessModeMask = 3, Create = 0x40, Exclusive = 0x80, Append = 0x400, NonBlocking = 0x800; // the same on every Linux architecture
    private const int TemporaryFile = 0x400000; // __O_TMPFILE, given with O_DIRECTORY
    // O_DIRECTORY and O_NOFOLLOW differ: arm and arm64 have their own values, the others (x86-64 among them) the generic ones.
    private static readonly bool ArmFlags = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm;
    private static int DirectoryOnly => ArmFlags ? 0x4000 : 0x10000;
    private static int NoFollow => ArmFlags ? 0x8000 : 0x20000;
    private const int GetStatusFlags = 3, SetStatusFlags = 4; // F_GETFL, F_SETFL
    private const int AtSymlinkFollow = 0x400;
    /// <summary>rw-rw-rw-, less the umask: what open(2) callers such as curl and cp ask for.</summary>
    private const int NewFileMode = 0x1B6;
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
    /// open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC): for a FIFO, fails at once with ENXIO while it has no reader
    /// instead of blocking; clear the flag with <see cref="SetBlocking"/> once it is open.
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle? OpenForWritingNonBlocking(string path, out int errno) =>
        Opened(Open(path, WriteOnly | NonBlocking | NoControllingTty | CloseOnExec, 0), out errno);

    /// <summary>
    /// An unnamed regular file in <paramref name="directory"/> (O_TMPFILE), open for writing: it vanishes if this process
    /// dies before <see cref="LinkUnnamed"/> gives it a name. Null and the errno where the file system cannot (EOPNOTSUPP,
    /// EISDIR or EINVAL on old kernels) or the user may not.
    /// </summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle? CreateUnnamed(string directory, out int errno) =>
        Opened(Open(directory, TemporaryFile | DirectoryOnly | WriteOnly | CloseOnExec, NewFileMode), out errno);

    /// <summary>open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666): a new file, never an existing one or a link.</summary>
    public static Microsoft.Win32.SafeHandles.SafeFileHandle? CreateExclusive(string path, out int errno) =>
        Opened(Open(path, WriteOnly | Create | Exclusive | NoFollow | CloseOnExec, NewFileMode), out errno);

    private static Microsoft.Win32.SafeHandles.SafeFileHandle? Opened(int fd, out int errno)
    {
        errno = fd >= 0 ? 0 : Marshal.GetLastPInvokeError();
        return fd >= 0 ? new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true) : null;
    }

    /// <summary>Gives a file made by <see cref="CreateUnnamed"/> the name <paramref name="path"/> (which must not exist); 0 or the errno.</summary>
    public static int LinkUnnamed(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path)
    {
        // linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH; the /proc link is what open(2) documents for everyone else.
        string self = "/proc/self/fd/" + handle.DangerousGetHandle().ToString(System.Globalization.CultureInfo.InvariantCulture);
        return LinkAt(AtFdCwd, self, AtFdCwd, path, AtSymlinkFollow) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>Whether <see cref="LinkUnnamed"/> can work here (/proc is mounted).</summary>
    public static bool CanLinkUnnamed => OperatingSystem.IsLinux() && Directory.Exists("/proc/self/fd");

    /// <summary>rename(2); 0 or the errno.</summary>
    public static int RenameOver(string from, string to) => Rename(from, to) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>unlink(2); 0 or the errno.</summary>
    public static int Remove(string path) => Unlink(path) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>How an open file was opened (fcntl F_GETFL).</summary>
    public static OpenFlags FlagsOf(Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        int flags = Fcntl(handle, GetStatusFlags, 0);
        if (flags < 0) throw new IOException($"cannot look at an open file ({Marshal.GetLastPInvokeErrorMessage()})");
        int access = flags & AccessModeMask;
        return new OpenFlags(Writable: access is WriteOnly or ReadWrite, Appends: (flags & Append) != 0, NonBlocking: (flags & NonBlocking) != 0);
    }

    /// <summary>Clears O_NONBLOCK.</summary>
    public static void SetBlocking(Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        int flags = Fcntl(handle, GetStatusFlags, 0);
        if (flags < 0 || Fcntl(handle, SetStatusFlags, flags & ~NonBlocking) < 0)
            throw new IOException($"cannot change how an open file is written ({Marshal.GetLastPInvokeErrorMessage()})");
    }

    /// <summary>write(2) until all of <paramref name="data"/> is written (a pipe takes it in parts); 0 or the errno.</summary>
    public static unsafe int WriteAll(Microsoft.Win32.SafeHandles.SafeFileHandle handle, ReadOnlySpan<byte> data)
    {
        const int EINTR = 4, EIO = 5;
        fixed (byte* start = data)
        {
            int done = 0;
            while (done < data.Length)
            {
                nint n = Write(handle, start + done, (nuint)(data.Length - done));
                if (n > 0)
                {
                    done += (int)n;
                    continue;
                }
                if (n == 0) return EIO; // a write that takes nothing would loop for ever
                int errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR) return errno;
            }
            return 0;
        }
    }

    /// <summary>fsync(2); 0 or the errno.</summary>
    public static int Sync(Microsoft.Win32.SafeHandles.SafeFileHandle handle) => Fsync(handle) == 0 ? 0 : Marshal.GetLastPInvokeError();

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
