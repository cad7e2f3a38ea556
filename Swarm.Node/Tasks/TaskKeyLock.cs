using Swarm.Core.Content;

namespace Swarm.Node;

/// <summary>
/// One fetch per task key in a data directory: the process (or the request within a node) that holds
/// <c>task-keys/&lt;key hex&gt;.lock</c> (an advisory lock the kernel drops when its holder dies) fetches; the others wait
/// for it and then find the finished content through the <see cref="LocalTaskRecord"/>. The holder touches the file as
/// its fetch progresses, so a waiter gives up only when the holder made no progress for the stall timeout.
/// </summary>
public sealed class TaskKeyLock : IDisposable
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan TouchInterval = TimeSpan.FromMilliseconds(500);
    private readonly FileStream _file;
    private readonly string _path;
    private long _lastTouch = Environment.TickCount64;

    private TaskKeyLock(FileStream file, string path, bool waited)
    {
        _file = file;
        _path = path;
        Waited = waited;
    }

    /// <summary>True when another holder had the lock first: it may have finished the fetch meanwhile.</summary>
    public bool Waited { get; }

    /// <summary>
    /// Takes the task key's lock, waiting while another holder has it and makes progress. <paramref name="say"/> is told
    /// once that this request waits. Throws <see cref="IOException"/> when the holder made no progress for
    /// <paramref name="stallTimeout"/>.
    /// </summary>
    public static async Task<TaskKeyLock> AcquireAsync(string dataDirectory, Hash256 taskKey, string display, TimeSpan stallTimeout,
        Action<string> say, CancellationToken cancellationToken)
    {
        string dir = LocalTaskRecord.DirectoryFor(dataDirectory);
        DataDirectory.Create(dir);
        string path = Path.Combine(dir, taskKey.ToHex() + ".lock");
        bool waited = false;
        DateTime stamp = default;
        long progressAt = Environment.TickCount64;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
                if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                return new TaskKeyLock(new FileStream(path, options), path, waited);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Held by another fetch of the same task key (FileShare.None is an exclusive advisory lock).
            }
            if (!waited)
            {
                say($"swarm: waiting for another swarm process in {dataDirectory} that is fetching {display}");
                waited = true;
            }
            var now = SafeLastWrite(path);
            if (now != stamp)
            {
                stamp = now;
                progressAt = Environment.TickCount64;
            }
            else if (Environment.TickCount64 - progressAt > stallTimeout.TotalMilliseconds)
            {
                throw new IOException($"another swarm process in {dataDirectory} is fetching {display} and made no progress for {stallTimeout.TotalSeconds:0} s; " +
                    "wait for it or stop it (this request then takes over and resumes from the pieces it verified), or use a different --data-dir");
            }
            await Task.Delay(PollInterval, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Tells waiters that the fetch is progressing (cheap: touches the lock file at most twice a second).</summary>
    public void Progressed()
    {
        long now = Environment.TickCount64;
        long last = Interlocked.Read(ref _lastTouch);
        if (now - last < TouchInterval.TotalMilliseconds || Interlocked.CompareExchange(ref _lastTouch, now, last) != last) return;
        try
        {
            File.SetLastWriteTimeUtc(_path, DateTime.UtcNow);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // waiters then go by the stall timeout
    }

    private static DateTime SafeLastWrite(string path)
    {
        try
        {
            return File.GetLastWriteTimeUtc(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return default;
        }
    }

    public void Dispose() => _file.Dispose();
}
