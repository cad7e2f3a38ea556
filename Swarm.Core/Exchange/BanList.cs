using System.Collections.Concurrent;
using System.Net;
using Swarm.Core.Content;

namespace Swarm.Core.Exchange;

/// <summary>Peers banned for sending bad data, by node id and by address, each until a deadline.</summary>
public sealed class BanList
{
    private readonly ConcurrentDictionary<Hash256, long> _nodes = new();
    private readonly ConcurrentDictionary<IPEndPoint, long> _addresses = new();

    public void Ban(Hash256 node, IPEndPoint? address, TimeSpan duration)
    {
        long until = Environment.TickCount64 + (long)duration.TotalMilliseconds;
        _nodes[node] = until;
        if (address != null) _addresses[address] = until;
    }

    public bool IsBanned(Hash256 node) => Check(_nodes, node);

    /// <summary>Nodes banned now.</summary>
    public int Count
    {
        get
        {
            long now = Environment.TickCount64;
            return _nodes.Count(kv => kv.Value > now);
        }
    }
    public bool IsBanned(IPEndPoint address) => Check(_addresses, address);

    private static bool Check<T>(ConcurrentDictionary<T, long> map, T key) where T : notnull
    {
        if (!map.TryGetValue(key, out long until)) return false;
        if (Environment.TickCount64 < until) return true;
        map.TryRemove(key, out _);
        return false;
    }
}
