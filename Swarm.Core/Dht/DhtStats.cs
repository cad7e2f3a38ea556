using System.Net;
using Swarm.Core.Content;

namespace Swarm.Core.Dht;

/// <summary>A snapshot of a node's DHT state for <c>swarm dht</c> and metrics.</summary>
public sealed record DhtStats
{
    public required Hash256 NodeId { get; init; }
    public IPEndPoint? LocalEndPoint { get; init; }
    /// <summary>Our address as other nodes see it (from their pong answers), when known.</summary>
    public IPEndPoint? ExternalEndPoint { get; init; }
    public int RoutingTableSize { get; init; }
    /// <summary>Non-empty buckets, by the length of the id prefix their nodes share with ours.</summary>
    public IReadOnlyList<BucketCount> Buckets { get; init; } = [];
    /// <summary>Signed records in this node's store (for others, and its own when it is among the closest to the key).</summary>
    public int RecordsHeld { get; init; }
    /// <summary>Provider records in this node's store (for others, and its own when it is among the closest), and the keys they cover.</summary>
    public int ProvidersHeld { get; init; }
    public int ProviderKeys { get; init; }
    /// <summary>Keys this node announces itself (re-announced periodically).</summary>
    public int Announcements { get; init; }

    public long DatagramsReceived { get; init; }
    public long DatagramsDropped => DroppedOversized + DroppedMalformed + DroppedBadKey + DroppedReplayed + DroppedRateLimited + DroppedUnsolicited;
    public long DroppedOversized { get; init; }
    /// <summary>Garbage, truncated, unknown kinds; without a swarm key also datagrams of keyed nodes (their authenticator is trailing bytes).</summary>
    public long DroppedMalformed { get; init; }
    /// <summary>With a swarm key: no authenticator or a wrong MAC — an outsider, or a node with another key.</summary>
    public long DroppedBadKey { get; init; }
    /// <summary>With a swarm key: authentic, but stamped outside the replay window, or the very datagram was accepted before.</summary>
    public long DroppedReplayed { get; init; }
    public long DroppedRateLimited { get; init; }
    /// <summary>Answers to nothing we asked: late, replayed, forged, or from the wrong address.</summary>
    public long DroppedUnsolicited { get; init; }
    public long RequestsAnswered { get; init; }
    public long RpcsSent { get; init; }
    public long RpcsAnswered { get; init; }
    public long RpcsTimedOut { get; init; }
    public long SendErrors { get; init; }
    /// <summary>Datagrams whose handling threw (a bug; they are logged and dropped).</summary>
    public long HandlerErrors { get; init; }
    public long Lookups { get; init; }
    public long LookupsTimedOut { get; init; }
    public LookupResult? LastLookup { get; init; }
}
