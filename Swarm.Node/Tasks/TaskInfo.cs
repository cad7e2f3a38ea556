namespace Swarm.Node;

/// <summary>A task as the control API reports it.</summary>
public sealed record TaskInfo
{
    public required string Id { get; init; }
    public required TaskRequest Request { get; init; }
    public TaskState State { get; init; } = TaskState.Running;
    public string? Error { get; init; }
    /// <summary>Why it failed, as far as the caller must act on it: what the CLI turns into its exit code.</summary>
    public FailureKind? ErrorKind { get; init; }
    public string? ContentId { get; init; }
    /// <summary>What the task produced when that is not a content id (seed oci://: the image's manifest digest).</summary>
    public string? Result { get; init; }
    public long Total { get; init; }
    public long Verified { get; init; }
    public int Peers { get; init; }
    public long FromPeers { get; init; }
    public long FromOrigin { get; init; }
    public DateTimeOffset Started { get; init; }
    public DateTimeOffset? Finished { get; init; }
}
