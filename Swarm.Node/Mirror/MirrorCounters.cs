namespace Swarm.Node.Mirror;

/// <summary>What the mirror counted, for /metrics (see <see cref="RegistryMirror.Counters"/>).</summary>
internal sealed class MirrorCounters
{
    private long _manifestRequests, _blobRequests, _notFound, _clientErrors, _bytesServed, _cut;

    /// <summary>A well-formed manifest or blob request.</summary>
    public void Request(bool manifest) => Interlocked.Increment(ref manifest ? ref _manifestRequests : ref _blobRequests);

    /// <summary>Counts a request's final status: 404s, and other 4xx.</summary>
    public void Answered(int status)
    {
        if (status == 404) Interlocked.Increment(ref _notFound);
        else if (status is >= 400 and < 500) Interlocked.Increment(ref _clientErrors);
    }

    /// <summary>Blob bytes sent to a client.</summary>
    public void Served(long bytes) => Interlocked.Add(ref _bytesServed, bytes);

    /// <summary>A blob stream cut (or answered 503) after the headers were decided.</summary>
    public void Cut() => Interlocked.Increment(ref _cut);

    public (long Manifests, long Blobs, long NotFound, long ClientErrors, long BytesServed, long Cut) Snapshot() =>
        (Interlocked.Read(ref _manifestRequests), Interlocked.Read(ref _blobRequests), Interlocked.Read(ref _notFound),
         Interlocked.Read(ref _clientErrors), Interlocked.Read(ref _bytesServed), Interlocked.Read(ref _cut));
}
