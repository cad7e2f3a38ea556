using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Swarm.Node;

/// <summary>
/// The node's unfinished tasks on disk (<c>tasks.json</c> in the data directory, 0600: it holds request headers and
/// signed URLs), so a restarted node resumes them from its store.
/// </summary>
public sealed class TaskJournal(string dataDirectory, ILogger logger)
{
    public const string FileName = "tasks.json";
    private readonly Lock _lock = new();

    public string Path { get; } = System.IO.Path.Combine(dataDirectory, FileName);

    private sealed record SavedTask(string Id, TaskRequest Request);

    public void Save(IEnumerable<(string Id, TaskRequest Request)> unfinished)
    {
        try
        {
            var saved = unfinished.Select(t => new SavedTask(t.Id, Resumable(t.Request))).ToList();
            lock (_lock)
            {
                // The temporary file is created 0600 before anything is written (a chmod afterwards would leave a window),
                // and a stale one of another mode is not reused.
                string tmp = Path + ".tmp";
                File.Delete(tmp);
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
                if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                using (var file = new FileStream(tmp, options))
                    JsonSerializer.Serialize(file, saved);
                File.Move(tmp, Path, overwrite: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("could not save the task list {Path}: {Error}", Path, e.Message);
        }
    }

    /// <summary>
    /// A task as a restarted node resumes it. A file the client handed over does not outlive this process, and the path is the
    /// client's (another mount namespace, another user's rights): the resumed task fetches into the store only, and the same get
    /// run again writes the file.
    /// </summary>
    private static TaskRequest Resumable(TaskRequest request) => request.OutputToken == null ? request : request with { OutputToken = null, Output = null };

    public List<(string Id, TaskRequest Request)> Load()
    {
        if (!File.Exists(Path)) return [];
        try
        {
            var saved = JsonSerializer.Deserialize<List<SavedTask>>(File.ReadAllText(Path)) ?? [];
            return [.. saved.Where(s => s?.Id != null && s.Request?.Source != null).Select(s => (s.Id, s.Request))];
        }
        catch (Exception e) when (e is JsonException or IOException or NotSupportedException)
        {
            logger.LogWarning("ignoring the unreadable task list {Path}: {Error}", Path, e.Message);
            return [];
        }
    }
}
