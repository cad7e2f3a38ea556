namespace Swarm.Node.Mirror;

/// <summary>Which endpoint of the distribution API a path under <c>/v2/</c> names.</summary>
internal enum RegistryEndpoint
{
    /// <summary>Nothing this mirror serves.</summary>
    None,
    Manifests,
    Blobs,
    Referrers,
    TagList,
}
