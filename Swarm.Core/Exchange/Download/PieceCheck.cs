namespace Swarm.Core.Exchange.Download;

/// <summary>The outcome of checking an assembled piece against its hash.</summary>
internal enum PieceCheck
{
    /// <summary>Live content whose signed hash for the piece has not come: nobody can be blamed, the piece is dropped.</summary>
    NoHash,
    /// <summary>Matched its hash, and is written and journalled.</summary>
    Verified,
    /// <summary>Did not match its hash.</summary>
    Failed,
}
