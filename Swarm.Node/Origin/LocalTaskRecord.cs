using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Sources;

namespace Swarm.Node;

/// <summary>
/// The data directory's own note of what a task key was last fetched as: <c>task-keys/&lt;key hex&gt;.pointer</c>, a
/// <see cref="TaskPointer"/> value (content id and the origin's validators at the time). It lets a process that waited for
/// another one in the same data directory (or a later request) find the finished content in the store without the DHT. It
/// is believed no more than a DHT pointer: the fetch hands it to <see cref="TaskTrust"/> like any other, and the content it
/// names is checked against its signed manifest when the store opens it. The file may have been written by anyone who
/// can write the directory, so it is read bounded and decoded defensively; anything odd reads as no record.
/// </summary>
public static class LocalTaskRecord
{
    public const string DirectoryName = "task-keys";
    /// <summary>A pointer value is well under this; a bigger file is not one.</summary>
    private const int MaxLength = 4096;

    public static string DirectoryFor(string dataDirectory) => Path.Combine(dataDirectory, DirectoryName);

    private static string PathFor(string dataDirectory, Hash256 taskKey, bool live) =>
        Path.Combine(DirectoryFor(dataDirectory), taskKey.ToHex() + (live ? ".live" : ".pointer"));

    /// <summary>
    /// Records that <paramref name="taskKey"/> is the sealed content <paramref name="id"/>, as the origin's
    /// <paramref name="validators"/> described it; or (<paramref name="live"/>) that an ingest of it from the origin is
    /// under way into the live entry <paramref name="id"/>, so that a later run continues it with a range request.
    /// </summary>
    public static void Write(string dataDirectory, Hash256 taskKey, ContentId id, OriginValidators validators, bool live = false)
    {
        string path = PathFor(dataDirectory, taskKey, live);
        DataDirectory.Create(DirectoryFor(dataDirectory));
        // Written whole under a name of its own and renamed into place: a reader never sees half a record.
        string tmp = path + "." + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)) + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        try
        {
            using (var file = new FileStream(tmp, options))
                file.Write(TaskPointer.Encode(id, live, validators));
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Forgets the record of an ingest under way (it was sealed, or its entry is gone).</summary>
    public static void DeleteLive(string dataDirectory, Hash256 taskKey)
    {
        try { File.Delete(PathFor(dataDirectory, taskKey, live: true)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>
    /// The recorded pointer for the task key (published by <paramref name="self"/>, this data directory's node id), or
    /// null; with <paramref name="live"/>, the record of an ingest under way.
    /// </summary>
    public static TaskPointer? TryRead(string dataDirectory, Hash256 taskKey, Hash256 self, bool live = false)
    {
        string path = PathFor(dataDirectory, taskKey, live);
        try
        {
            // Not followed if it is a link, nor read if it is not a regular file of a plausible size (a FIFO would block the read).
            var info = new FileInfo(path);
            if (!info.Exists || info.LinkTarget != null || info.Length is 0 or > MaxLength) return null; // a FIFO or device has length 0
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            byte[] value = new byte[MaxLength];
            int read = 0, n;
            while (read < value.Length && (n = file.Read(value, read, value.Length - read)) > 0) read += n;
            if (read == value.Length) return null;
            var pointer = TaskPointer.TryDecode(value.AsMemory(0, read), self, 0);
            return pointer != null && pointer.Live == live ? pointer : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
