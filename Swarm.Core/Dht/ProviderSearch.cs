namespace Swarm.Core.Dht;

/// <summary>
/// What a provider lookup found, and whether it reached the DHT: <see cref="NodesAnswered"/> 0 means no node answered
/// (the network is unreachable or busy), which is not the same as "nobody provides it".
/// </summary>
public sealed record ProviderSearch(IReadOnlyList<ProviderRecord> Providers, int NodesAnswered, int NodesAsked);
