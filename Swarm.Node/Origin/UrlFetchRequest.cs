using System.Net;
using Swarm.Core.Content;

namespace Swarm.Node;

/// <summary>What <c>swarm get URL</c> asks for.</summary>
public sealed record UrlFetchRequest(Uri Url, Hash256 TaskKey)
{
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];
    /// <summary>Go to the origin when the swarm cannot serve (false: fail instead).</summary>
    public bool BackToSource { get; init; } = true;
    /// <summary>How long to wait for another node's ingest to produce a pointer before going to the origin.</summary>
    public TimeSpan WaitForOthers { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Peers given by hand (--peer), tried besides the DHT.</summary>
    public IReadOnlyList<IPEndPoint> Peers { get; init; } = [];
    /// <summary>Told the id of each content the fetch downloads or ingests into, as soon as it is known (for serving it as it streams in).</summary>
    public Action<ContentId>? OnContent { get; init; }
    /// <summary>The URL as it may be shown in messages and logs (signed query values redacted); the URL itself by default.</summary>
    public string? Display { get; init; }
    /// <summary>Node ids whose pointers are used without the origin's confirmation; when not empty, only theirs are used.</summary>
    public IReadOnlySet<Hash256> TrustedPublishers { get; init; } = new HashSet<Hash256>();
    /// <summary>The SHA-256 the whole content must have (<c>--digest</c>, an OCI digest): any pointer may be tried, the content is checked.</summary>
    public Hash256? Digest { get; init; }

    internal string Shown => Display ?? Url.ToString();
}
