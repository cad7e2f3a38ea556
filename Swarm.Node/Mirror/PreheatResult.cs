namespace Swarm.Node.Mirror;

/// <summary>What a preheat did.</summary>
/// <param name="Digest">The digest of the manifest (or index) the reference resolved to.</param>
/// <param name="Manifests">Manifests put into the swarm (the index and the image manifests).</param>
/// <param name="Blobs">Configs and layers put into the swarm.</param>
/// <param name="Bytes">Bytes of those blobs.</param>
/// <param name="FromUpstream">Bytes read from the registry (blobs this node already held are not read again).</param>
public sealed record PreheatResult(string Digest, int Manifests, int Blobs, long Bytes, long FromUpstream);
