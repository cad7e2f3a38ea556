using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>
/// A task the node runs for a client: its request, where it stands (what <see cref="Info"/> shows), and the observer the
/// <see cref="TaskRunner"/> reports to. Origin bytes it reads count towards the node's total through
/// <paramref name="countOrigin"/> (once: a fetch shared by several tasks counts through <see cref="NodeFetchSharing"/>).
/// </summary>
public sealed class RunningTask(string id, TaskRequest request, Action<long> countOrigin, ILogger logger) : ITaskObserver, IDisposable
{
    public string Id { get; } = id;
    /// <summary>The real request (headers, signed URL): in memory and in the 0600 task list only, because a resumed task needs it.</summary>
    public TaskRequest Request { get; } = request;
    /// <summary>Everything shown about the task (API, logs, error texts) goes through this.</summary>
    public SecretRedactor Redactor { get; } = new(request.Source, request.Filters, request.Headers);
    public DateTimeOffset Started { get; } = DateTimeOffset.UtcNow;
    public CancellationTokenSource Cancel { get; } = new();
    /// <summary>The file the client handed over for its output (<see cref="TaskRequest.OutputToken"/>); closed when the task ends.</summary>
    public HandedOutput? Output { get; set; }
    public Task? Run { get; set; }

    private volatile int _state = (int)TaskState.Running;
    public TaskState State { get => (TaskState)_state; set => _state = (int)value; }
    public string? Error { get; set; }
    public FailureKind? ErrorKind { get; set; }
    public ContentId? Content { get; set; }
    public string? Result { get; set; }
    public DateTimeOffset? Finished { get; set; }

    internal long Total, Verified, FromPeers, FromOrigin;
    internal int Peers;

    public TaskInfo Info() => new()
    {
        Id = Id, Request = Request.Redacted(Redactor), State = State, Error = Error, ErrorKind = ErrorKind, ContentId = Content?.ToUri(), Result = Result,
        Total = Interlocked.Read(ref Total), Verified = Interlocked.Read(ref Verified), Peers = Peers,
        FromPeers = Interlocked.Read(ref FromPeers), FromOrigin = Interlocked.Read(ref FromOrigin), Started = Started, Finished = Finished,
    };

    public void OnContent(ContentId id) => Content = id;

    public void OnOrigin(long done, long total)
    {
        long delta = Advance(ref FromOrigin, done);
        if (delta > 0) countOrigin(delta);
        Interlocked.Exchange(ref Total, total);
        Interlocked.Exchange(ref Verified, done);
    }

    public void OnIngest(long done, long total)
    {
        Interlocked.Exchange(ref Total, total);
        Interlocked.Exchange(ref Verified, done);
    }

    public void OnSwarm(TransferProgress progress)
    {
        Interlocked.Exchange(ref Total, progress.TotalBytes);
        Interlocked.Exchange(ref Verified, progress.VerifiedBytes);
        Interlocked.Exchange(ref FromPeers, progress.BytesFromPeers);
        Peers = progress.Peers;
    }

    public void Say(string line) => logger.LogInformation("task {Task}: {Line}", Id, Redactor.Scrub(line.StartsWith("swarm: ", StringComparison.Ordinal) ? line[7..] : line));

    /// <summary>Shown by a fetch several tasks share: the progress of the one transfer, the origin bytes counted elsewhere.</summary>
    internal void ShowShared(long done, long total, long fromOrigin)
    {
        Interlocked.Exchange(ref FromOrigin, fromOrigin);
        Interlocked.Exchange(ref Total, total);
        Interlocked.Exchange(ref Verified, done);
    }

    /// <summary>Raises <paramref name="seen"/> to <paramref name="done"/> if that is higher; returns by how much (never negative).</summary>
    internal static long Advance(ref long seen, long done)
    {
        while (true)
        {
            long was = Interlocked.Read(ref seen);
            if (done <= was) return 0;
            if (Interlocked.CompareExchange(ref seen, done, was) == was) return done - was;
        }
    }

    public void Dispose()
    {
        Cancel.Dispose();
        Output?.Dispose();
    }
}
