using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Storage;

namespace Swarm.Node.Mirror;

/// <summary>
/// One digest being fetched: which content it is going into right now (it can change: a swarm download that fails goes
/// to the upstream), a pulse on every verified piece, and the verified result.
/// </summary>
public sealed class BlobFetch
{
    private readonly TaskCompletionSource<StoredContent> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _pulse = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _lock = new();
    private ContentId? _current;

    internal BlobFetch(string digest) => Digest = digest;

    public string Digest { get; }
    /// <summary>The verified content (checked against the digest).</summary>
    public Task<StoredContent> Completion => _done.Task;
    /// <summary>The length the upstream gave in its HEAD, when it answered.</summary>
    public long? UpstreamLength { get; internal set; }

    private long _upstreamBytes;

    /// <summary>Whether this node has read bytes of it from the upstream (else they came from the swarm), so far.</summary>
    public bool UsedUpstream => Interlocked.Read(ref _upstreamBytes) > 0;

    internal void CountUpstream(long bytes) => Interlocked.Add(ref _upstreamBytes, bytes);

    internal void SetCurrent(ContentId id)
    {
        lock (_lock) _current = id;
        Pulse();
    }

    internal void Pulse() => Interlocked.Exchange(ref _pulse, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    internal void Complete(StoredContent content)
    {
        _done.TrySetResult(content);
        Pulse();
    }

    internal void Fail(Exception e)
    {
        _done.TrySetException(e);
        Pulse();
    }

    /// <summary>The content the bytes are going into now (possibly partial), or null while it is not known yet.</summary>
    public StoredContent? Current(SwarmEngine engine)
    {
        if (_done.Task.IsCompletedSuccessfully) return _done.Task.Result;
        ContentId? current;
        lock (_lock) current = _current;
        if (current is { } id && engine.Find(id) is { } swarm) return swarm.Sealed ?? swarm.Content;
        return null;
    }

    /// <summary>Waits for the next verified piece, a change of content or the end, at most <paramref name="timeout"/>.</summary>
    public async Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var pulse = Volatile.Read(ref _pulse).Task;
        if (_done.Task.IsCompleted) return;
        try
        {
            await pulse.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException) { }
    }
}
