using Swarm.Core.Content;

namespace Swarm.Node;

/// <summary>What a <see cref="TaskRunner"/> takes from where it runs (the node service, or a CLI command).</summary>
public sealed record TaskRunnerContext
{
    /// <summary>Node ids whose pointers are used without the origin's confirmation (the <c>trusted-publishers</c> setting).</summary>
    public IReadOnlySet<Hash256> TrustedPublishers { get; init; } = new HashSet<Hash256>();

    public IFetchSharing Sharing { get; init; } = NoFetchSharing.Instance;

    /// <summary>For <c>seed oci://</c>: the node's OCI content and registry settings (none: image sources are refused).</summary>
    public Mirror.OciContent? Oci { get; init; }
    public Mirror.Registries? Registries { get; init; }
}
