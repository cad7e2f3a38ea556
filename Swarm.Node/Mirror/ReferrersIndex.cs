namespace Swarm.Node.Mirror;

/// <summary>
/// A referrers answer as the upstream gave it: the image index's bytes, its <c>OCI-Filters-Applied</c> and <c>Link</c>
/// headers, and when this node received it.
/// </summary>
internal sealed record ReferrersIndex(byte[] Body, string? FiltersApplied, string? Link, DateTime FetchedAt);
