namespace Swarm.Node;

/// <summary>One routing-table bucket: the ids in it share this many leading bits with the node's own.</summary>
public sealed record DhtBucketView(int SharedPrefixBits, int Nodes);
