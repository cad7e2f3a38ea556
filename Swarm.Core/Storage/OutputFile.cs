using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Swarm.Core.Storage;

/// <summary>
/// The output of a <c>get</c> that another process writes (the node: <see cref="HandedOutput"/> on its side), opened here, by
/// the caller, so that the caller's rights and the caller's view of the file system decide where the file goes and who owns
/// it. A regular (or missing) target: a new file in the target's directory — unnamed (O_TMPFILE) where the file system
/// allows, so nothing is left behind if this process dies, else under a temporary name — which <see cref="Commit"/> renames
/// over the target once the writer says it is complete; until then the target is untouched. A FIFO or character device: the
/// target itself, opened for writing (a FIFO only once it has a reader, as curl does).
/// </summary>
public sealed class OutputFile : IDisposable
{
    private const int EPERM = 1, EACCES = 13, EEXIST = 17, ENXIO = 6, EROFS = 30;
    private static readonly TimeSpan ReaderPoll = TimeSpan.FromMilliseconds(100);
    private SafeFileHandle? _handle;
    private string? _temporaryPath; // a named temporary file, removed unless committed
    private readonly bool _unnamed;

    private OutputFile(OutputTarget target, SafeFileHandle handle, string? temporaryPath, bool unnamed)
    {
        Target = target;
        _handle = handle;
        _temporaryPath = temporaryPath;
        _unnamed = unnamed;
    }

    public OutputTarget Target { get; }

    /// <summary>The open file, to hand over.</summary>
    public SafeFileHandle Handle => _handle ?? throw new ObjectDisposedException(nameof(OutputFile));

    /// <summary>
    /// Opens the output for <paramref name="target"/> (as <see cref="OutputTarget.Inspect"/> decided it). A FIFO without a
    /// reader is waited for, saying so once through <paramref name="say"/>; cancelling stops the wait.
    /// </summary>
    public static async Task<OutputFile> OpenAsync(OutputTarget target, Action<string> say, CancellationToken cancellationToken)
    {
        if (!target.WritesThrough) return CreateNew(target);
        string kind = UnixFileStatus.Describe(target.Type);
        SafeFileHandle? handle;
        int errno;
        bool told = false;
        while (true)
        {
            // Non-blocking, so that waiting for a FIFO's reader can be cancelled; cleared below before the file is handed over.
            handle = NativeFile.OpenForWritingNonBlocking(target.Path, out errno);
            if (handle != null || errno != ENXIO || target.Type != UnixFileType.Fifo) break;
            if (!told) say($"waiting for a reader of the FIFO {target.Path} (the download starts when one opens it)");
            told = true;
            await Task.Delay(ReaderPoll, cancellationToken).ConfigureAwait(false);
        }
        if (handle == null)
        {
            throw errno is EACCES or EPERM
                ? new OutputNotWritableException($"cannot open {kind} {target.Path} for writing (permission denied); fix its permissions or choose another -o")
                : new IOException($"cannot open {kind} {target.Path} for writing ({Marshal.GetPInvokeErrorMessage(errno)}); choose another -o");
        }
        try
        {
            // What was opened must still be what was inspected: a regular file swapped in meanwhile is not written in place.
            var opened = NativeFile.Stat(handle).Type;
            if (opened != target.Type)
                throw new OutputTargetException($"-o {target.Path} was {kind} a moment ago and is {UnixFileStatus.Describe(opened)} now; nothing was written: run the same get again");
            NativeFile.SetBlocking(handle);
            return new OutputFile(target, handle, null, unnamed: false);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static OutputFile CreateNew(OutputTarget target)
    {
        string dir = Path.GetDirectoryName(target.FilePath)!;
        try
        {
            Directory.CreateDirectory(dir); // as the export does: the directories -o names that do not exist yet, with this user's rights
        }
        catch (UnauthorizedAccessException e)
        {
            throw new OutputNotWritableException($"cannot write -o {target.Path}: this user may not create {dir}; choose an output in a directory you can write", e);
        }
        catch (IOException e)
        {
            throw new OutputNotWritableException($"cannot write -o {target.Path}: creating {dir} failed ({e.Message}); choose another output", e);
        }
        int errno = 0;
        if (NativeFile.CanLinkUnnamed)
        {
            var unnamed = NativeFile.CreateUnnamed(dir, out errno);
            if (unnamed != null) return new OutputFile(target, unnamed, null, unnamed: true);
        }
        // No O_TMPFILE here (or no /proc to name the file by): a named temporary file beside the target.
        if (errno is not (EACCES or EPERM or EROFS))
        {
            for (int attempt = 0; attempt < 4; attempt++)
            {
                string temporary = TemporaryName(target.FilePath);
                var named = NativeFile.CreateExclusive(temporary, out errno);
                if (named != null) return new OutputFile(target, named, temporary, unnamed: false);
                if (errno != EEXIST) break;
            }
        }
        throw errno is EACCES or EPERM
            ? new OutputNotWritableException($"cannot write -o {target.Path}: this user may not create files in {dir}; choose an output in a directory you can write, or fix its permissions")
            : new OutputNotWritableException($"cannot write -o {target.Path}: creating a file in {dir} failed ({Marshal.GetPInvokeErrorMessage(errno)}); choose an output on a writable file system");
    }

    private static string TemporaryName(string filePath) => Path.Combine(Path.GetDirectoryName(filePath)!,
        "." + Path.GetFileName(filePath) + ".swarm-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)));

    /// <summary>
    /// Once the other process holds its own copy: a FIFO or device is closed here, so that its reader sees the end as soon as
    /// the writer is done (a regular file stays open: <see cref="Commit"/> names it through this handle).
    /// </summary>
    public void HandedOver()
    {
        if (!Target.WritesThrough) return;
        _handle?.Dispose();
        _handle = null;
    }

    /// <summary>
    /// The writer said the content is complete (<paramref name="length"/> bytes): a regular file is checked for its length
    /// and renamed over the target (given a temporary name first, if it has none), atomically; nothing to do for a FIFO or device.
    /// </summary>
    public void Commit(long length)
    {
        if (Target.WritesThrough) return;
        var handle = Handle;
        long written = RandomAccess.GetLength(handle);
        if (written != length)
            throw new IOException($"the node wrote {written:N0} of {length:N0} bytes for -o {Target.Path}; nothing was put there: run the same get again");
        int errno;
        if (_unnamed && _temporaryPath == null)
        {
            for (int attempt = 0; ; attempt++)
            {
                string temporary = TemporaryName(Target.FilePath);
                errno = NativeFile.LinkUnnamed(handle, temporary);
                if (errno == 0)
                {
                    _temporaryPath = temporary;
                    break;
                }
                if (errno != EEXIST || attempt >= 3) throw NotPut(errno);
            }
        }
        errno = NativeFile.RenameOver(_temporaryPath!, Target.FilePath);
        if (errno != 0) throw NotPut(errno);
        _temporaryPath = null; // it is the target now
    }

    private IOException NotPut(int errno) => new(errno is EACCES or EPERM
        ? $"cannot put the verified file at -o {Target.Path} (permission denied in {Path.GetDirectoryName(Target.FilePath)}); the node keeps the content: fix the permissions and run the same get again"
        : $"cannot put the verified file at -o {Target.Path} ({Marshal.GetPInvokeErrorMessage(errno)}); the node keeps the content: run the same get again");

    /// <summary>Closes the file; a temporary name that was not committed is removed (an unnamed file goes by itself).</summary>
    public void Dispose()
    {
        _handle?.Dispose();
        _handle = null;
        // Best effort: a name left behind says what it is (".NAME.swarm-…"), and it never was the target.
        if (_temporaryPath is { } temporary) NativeFile.Remove(temporary);
        _temporaryPath = null;
    }
}
