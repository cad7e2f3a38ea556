using Swarm.Core.Dht;

namespace Swarm.Node;

/// <summary>What <c>swarm dht</c> shows: the node's view of the DHT.</summary>
public sealed record DhtView(string NodeId, string? Endpoint, string? External, int RoutingTable, IReadOnlyList<DhtBucketView> Buckets,
    int RecordsHeld, int ProvidersHeld, int ProviderKeys, long DatagramsReceived, long DatagramsDropped)
{
    public static DhtView From(Swarm.Core.Dht.DhtStats s) => new(s.NodeId.ToHex(), s.LocalEndPoint?.ToString(), s.ExternalEndPoint?.ToString(), s.RoutingTableSize,
        [.. s.Buckets.Select(b => new DhtBucketView(b.Index, b.Count))], s.RecordsHeld, s.ProvidersHeld, s.ProviderKeys, s.DatagramsReceived, s.DatagramsDropped);
}
