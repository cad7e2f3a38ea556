using Swarm.Core.Content;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>What a task produced.</summary>
/// <param name="Content">The verified content (none for an image preheat, which produces many).</param>
/// <param name="Result">What to print: the swarm:// id, or an image's manifest digest.</param>
/// <param name="Bytes">The size of what it produced.</param>
/// <param name="FromOrigin">This node read it from the origin (bytes <see cref="Bytes"/>), or for a preheat <see cref="FromUpstream"/> bytes.</param>
/// <param name="FromUpstream">Bytes read from the registry by a preheat.</param>
/// <param name="AlreadyLocal">Bytes the store held before the task started.</param>
/// <param name="Contenders">Other nodes that asked for the same URL at the same time (cold start).</param>
/// <param name="Summary">A preheat's count of manifests and blobs, for the closing line.</param>
/// <param name="SwarmId">The swarm the content was fetched or ingested in (a live id while another node ingests), whose peers may still want it.</param>
public sealed record TaskOutcome(StoredContent? Content, string Result, long Bytes, bool FromOrigin, long FromUpstream, long AlreadyLocal, int Contenders,
    string? Summary = null, ContentId? SwarmId = null)
{
    public ContentId? Id => Content?.Id;
}
