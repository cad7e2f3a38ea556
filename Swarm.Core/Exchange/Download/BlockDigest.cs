namespace Swarm.Core.Exchange.Download;

/// <summary>Who sent block <paramref name="Block"/> of a piece, and the SHA-256 of what it sent.</summary>
internal readonly record struct BlockDigest(PeerState? From, int Block, byte[] Hash);
