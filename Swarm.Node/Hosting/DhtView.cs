using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Swarm.Core.Content;
using Swarm.Core.Exchange;

namespace Swarm.Node;

/// <summary>What <c>swarm dht</c> shows: the node's view of the DHT.</summary>
public sealed record DhtView(string NodeId, string? Endpoint, string? External, int RoutingTable, IReadOnlyList<DhtBucketView> Buckets,
    int RecordsHeld, int ProvidersHeld, int ProviderKeys, long DatagramsReceived, long DatagramsDropped)
{
    public static DhtView From(Swarm.Core.Dht.DhtStats s) => new(s.NodeId.ToHex(), s.LocalEndPoint?.ToString(), s.ExternalEndPoint?.ToString(), s.RoutingTableSize,
        [.. s.Buckets.Select(b => new DhtBucketView(b.Index, b.Count))], s.RecordsHeld, s.ProvidersHeld, s.ProviderKeys, s.DatagramsReceived, s.DatagramsDropped);
}
