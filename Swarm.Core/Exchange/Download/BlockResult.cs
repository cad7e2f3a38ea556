namespace Swarm.Core.Exchange.Download;

/// <summary>What became of a block that arrived.</summary>
internal enum BlockResult
{
    /// <summary>Not asked of this peer (cancelled, timed out) or its piece is done: wasted, not an error.</summary>
    Unexpected,
    /// <summary>Another peer's copy came first (end game): wasted.</summary>
    Duplicate,
    /// <summary>Copied into its piece.</summary>
    Stored,
}
