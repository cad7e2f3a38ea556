using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Swarm.Core.Content;

namespace Swarm.Core.Storage;

/// <summary>
/// An output file that another process (the <c>swarm get</c> that asked) opened itself and handed over (<see cref="OutputFile"/>
/// on its side): this process writes the verified content into it and never opens a path, so the other process's rights and
/// its view of the file system decide where the bytes go. What arrives is checked before it is used: a regular file, FIFO or
/// character device, open for writing, not for appending, blocking.
/// </summary>
public sealed class HandedOutput : IDisposable
{
    private readonly SafeFileHandle _handle;

    private HandedOutput(SafeFileHandle handle, UnixFileType type)
    {
        _handle = handle;
        Type = type;
    }

    /// <summary>Regular file, FIFO or character device.</summary>
    public UnixFileType Type { get; }

    /// <summary>
    /// Takes <paramref name="handle"/> (closed here when it is refused) if it is something swarm writes; throws
    /// <see cref="OutputTargetException"/> saying what is wrong with it otherwise.
    /// </summary>
    public static HandedOutput Adopt(SafeFileHandle handle)
    {
        try
        {
            if (!OperatingSystem.IsLinux()) throw new OutputTargetException("open files are handed over on Linux only");
            UnixFileType type;
            OpenFlags flags;
            try
            {
                type = NativeFile.Stat(handle).Type;
                flags = NativeFile.FlagsOf(handle);
            }
            catch (IOException e)
            {
                throw new OutputTargetException($"the file handed over cannot be looked at: {e.Message}");
            }
            if (type is not (UnixFileType.Regular or UnixFileType.Fifo or UnixFileType.CharacterDevice))
                throw new OutputTargetException($"the file handed over is {UnixFileStatus.Describe(type)}; swarm writes to regular files, FIFOs and character devices only");
            if (!flags.Writable) throw new OutputTargetException($"the {Kind(type)} handed over is not open for writing; open it write-only");
            if (flags.Appends) throw new OutputTargetException($"the {Kind(type)} handed over is open for appending (O_APPEND); swarm writes it from its start");
            if (flags.NonBlocking) throw new OutputTargetException($"the {Kind(type)} handed over is non-blocking (O_NONBLOCK); clear the flag before handing it over");
            return new HandedOutput(handle, type);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static string Kind(UnixFileType type) => type switch
    {
        UnixFileType.Regular => "file",
        UnixFileType.Fifo => "FIFO",
        _ => "device",
    };

    /// <summary>
    /// Writes the verified content into the file: a regular file from offset 0 (a second attempt after a refetch writes over the
    /// first), cut to the content's length and fsynced, so that it is complete on disk when the other process gives it its
    /// name; a FIFO or device in order, after the stored pieces are re-hashed (except <paramref name="verifiedInMemory"/>), as
    /// what reached a pipe cannot be taken back. <paramref name="shown"/> is the output as the other process named it, for
    /// messages. Throws <see cref="PieceRottenException"/> when a stored piece fails and nothing that counts was written.
    /// </summary>
    public void Write(StoredContent content, Bitfield? verifiedInMemory, string shown, CancellationToken cancellationToken)
    {
        content.EnsureExportable();
        bool seekable = Type == UnixFileType.Regular;
        if (!seekable) content.VerifyBeforeExport(verifiedInMemory);
        string what = seekable ? $"the file for -o {shown}" : $"{UnixFileStatus.Describe(Type)} {shown}";
        VerifiedCopy.Into(content, _handle, seekable, what, cancellationToken);
        if (!seekable) return;
        try
        {
            RandomAccess.SetLength(_handle, content.Layout.Length);
        }
        catch (IOException e)
        {
            throw new IOException($"cannot set the length of {what} ({e.Message}); the content stays in the store: run the same get again", e);
        }
        int errno = NativeFile.Sync(_handle);
        if (errno != 0)
            throw new IOException($"writing {what} to disk failed ({Marshal.GetPInvokeErrorMessage(errno)}); the content stays in the store: run the same get again");
    }

    /// <summary>Closes this process's copy: a FIFO's reader sees the end once the other process closed its copy too.</summary>
    public void Dispose() => _handle.Dispose();
}
