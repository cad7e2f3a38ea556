namespace Swarm.Core.Dht;

/// <summary>
/// What a provider lookup found, and whether it reached the DHT: <see cref="NodesAnswered"/> 0 means no node answered
/// (the network is unreachable or busy), which is not the same as "nobody provides it". <see cref="Lookup"/> tells what
/// the lookup cost (rounds, queries, time).
/// </summary>
public sealed record ProviderSearch(IReadOnlyList<ProviderRecord> Providers, LookupResult Lookup)
{
    public int NodesAnswered => Lookup.Answered;
    public int NodesAsked => Lookup.Queries;
}
