namespace Swarm.Node;

/// <summary>Whether this node won the lease, and how many other nodes were asking for the same task at the time.</summary>
public readonly record struct LeaseResult(bool IsHolder, int Others);
