using System.Runtime.InteropServices;

namespace Swarm.Core.Storage;

/// <summary>
/// What <c>-o PATH</c> names, decided before a download starts so that a refusal costs no transfer (issue #13), and
/// again when the content is exported. Nothing or a regular file: the verified content appears there atomically (a hard
/// link into the store under a temporary name, then rename). A FIFO or a character device: the bytes are written through
/// it as curl does, and it stays what it is. A symbolic link: the same for its final target, and a regular (or missing)
/// target is replaced at the target's own path, so the link stays a link. Directories, sockets and block devices are
/// refused: replacing them would destroy something that is not a file, and writing into them means nothing sensible.
/// </summary>
public sealed class OutputTarget
{
    private const int EPERM = 1, EACCES = 13, ELOOP = 40;

    private OutputTarget(string path, string filePath, UnixFileType type, bool viaSymlink)
    {
        Path = path;
        FilePath = filePath;
        Type = type;
        ViaSymlink = viaSymlink;
    }

    /// <summary>The output path as given (absolute).</summary>
    public string Path { get; }

    /// <summary>Where an atomic export puts the file: <see cref="Path"/>, or the final target of the symbolic link it is.</summary>
    public string FilePath { get; }

    /// <summary>The kind of what is there now (for a symbolic link, of its final target): missing, regular, FIFO or character device.</summary>
    public UnixFileType Type { get; }

    public bool ViaSymlink { get; }

    /// <summary>A FIFO or a character device: opened for writing and fed the bytes; never linked or replaced.</summary>
    public bool WritesThrough => Type is UnixFileType.Fifo or UnixFileType.CharacterDevice;

    /// <summary>Looks at what <paramref name="path"/> names and decides how to write it; throws <see cref="OutputTargetException"/> when swarm must not.</summary>
    public static OutputTarget Inspect(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        var own = Stat(full, followLinks: false);
        if (own.Type != UnixFileType.Symlink) return Decide(full, full, own.Type, viaSymlink: false);

        var target = NativeFile.Stat(full, followLinks: true, out int errno);
        if (errno == ELOOP)
            throw new OutputTargetException($"-o {full} is a symbolic link that cannot be followed (a loop, or too many links); point -o at a file");
        if (errno != 0) throw CannotLook(full, errno);
        string final;
        try
        {
            final = File.ResolveLinkTarget(full, returnFinalTarget: true)?.FullName ?? full;
        }
        catch (IOException)
        {
            throw new OutputTargetException($"-o {full} is a symbolic link that cannot be followed (a loop, or too many links); point -o at a file");
        }
        // A dangling link: the target is created through it (as curl does), but only in a directory that exists; swarm
        // does not make directories wherever a link happens to point.
        if (target.Type == UnixFileType.Missing && !Directory.Exists(System.IO.Path.GetDirectoryName(final)))
            throw new OutputTargetException($"-o {full} is a symbolic link to {final}, whose directory does not exist; create it, or point -o elsewhere");
        return Decide(full, final, target.Type, viaSymlink: true);
    }

    private static UnixFileStatus Stat(string path, bool followLinks)
    {
        var status = NativeFile.Stat(path, followLinks, out int errno);
        return errno == 0 ? status : throw CannotLook(path, errno);
    }

    private static IOException CannotLook(string path, int errno) => new(errno is EACCES or EPERM
        ? $"cannot look at -o {path} (permission denied); choose an output this user may write"
        : $"cannot look at -o {path} ({Marshal.GetPInvokeErrorMessage(errno)}); choose another output");

    private static OutputTarget Decide(string path, string filePath, UnixFileType type, bool viaSymlink)
    {
        string what = viaSymlink ? $"-o {path} is a symbolic link to {filePath}, which is" : $"-o {path} is";
        if (type is UnixFileType.Missing or UnixFileType.Regular) EnsureWritableDirectory(path, filePath);
        return type switch
        {
            UnixFileType.Missing or UnixFileType.Regular or UnixFileType.Fifo or UnixFileType.CharacterDevice => new OutputTarget(path, filePath, type, viaSymlink),
            UnixFileType.Directory => throw new OutputTargetException($"{what} a directory; give the name of the file to write (e.g. -o {System.IO.Path.Combine(path, "NAME")})"),
            UnixFileType.BlockDevice => throw new OutputTargetException($"{what} a block device; swarm does not write onto block devices: write to a file, then copy it onto the device"),
            _ => throw new OutputTargetException($"{what} {UnixFileStatus.Describe(type)}; swarm writes to regular files, FIFOs and character devices only: choose another -o"),
        };
    }

    /// <summary>
    /// The export creates a temporary name in the file's directory and renames it over the file, so the directory (or the
    /// nearest one that exists, where the export will create the rest) must be writable by this process — checked now, by
    /// creating and removing a probe file, so that a get that could never write its output fails before it downloads.
    /// </summary>
    private static void EnsureWritableDirectory(string path, string filePath)
    {
        string? dir = System.IO.Path.GetDirectoryName(filePath);
        while (dir != null && !Directory.Exists(dir)) dir = System.IO.Path.GetDirectoryName(dir);
        if (dir == null) return;
        string probe = System.IO.Path.Combine(dir, ".swarm-probe-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)));
        try
        {
            using var _ = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new OutputNotWritableException($"cannot write -o {path}: this user may not create files in {dir}; choose an output in a directory you can write, or fix its permissions", e);
        }
        catch (IOException e)
        {
            throw new OutputNotWritableException($"cannot write -o {path}: creating a file in {dir} failed ({e.Message}); choose an output on a writable file system", e);
        }
    }

    /// <summary>
    /// Opens the FIFO or device for writing (following a symbolic link, creating nothing; truncation does not apply to
    /// either) and streams the verified content into it (<see cref="VerifiedCopy"/>). Blocks, as curl does, until a FIFO has a reader.
    /// </summary>
    public void WriteThrough(StoredContent content)
    {
        if (!WritesThrough) throw new InvalidOperationException($"{Path} is {UnixFileStatus.Describe(Type)}: it is exported, not written through");
        string kind = UnixFileStatus.Describe(Type);
        using var handle = NativeFile.OpenForWriting(Path, out int errno, out string error)
            ?? throw (errno is EACCES or EPERM
                ? new UnauthorizedAccessException($"cannot open {kind} {Path} for writing (permission denied); the content stays in the store: fix the permissions or choose another -o")
                : new IOException($"cannot open {kind} {Path} for writing ({error}); the content stays in the store: choose another -o, or run the same get again"));
        // What was opened must still be what was inspected: a regular file swapped in meanwhile is not written in place.
        var opened = NativeFile.Stat(handle);
        if (OperatingSystem.IsLinux() && opened.Type != Type)
            throw new OutputTargetException($"-o {Path} was {kind} when the download started and is {UnixFileStatus.Describe(opened.Type)} now; nothing was written: run the same get again");
        VerifiedCopy.Into(content, handle, seekable: false, $"{kind} {Path}", CancellationToken.None);
    }
}
