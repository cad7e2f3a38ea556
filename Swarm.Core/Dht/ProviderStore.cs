using System.Net;
using Swarm.Core.Content;

namespace Swarm.Core.Dht;

/// <summary>
/// Provider records this node stores for others: per key, one record per provider endpoint (IP from the announcing datagram,
/// TCP port from the message). Bounded in records per key, records overall and bytes; records expire after the TTL.
/// </summary>
internal sealed class ProviderStore
{
    private sealed record Stored(ProviderRecord Record, DateTimeOffset Refreshed, int Bytes, UInt128 Source);

    private readonly Dictionary<Hash256, Dictionary<IPEndPoint, Stored>> _byKey = [];
    private readonly Lock _lock = new();
    private readonly DhtOptions _options;
    private readonly TimeProvider _time;
    private int _count;
    private long _bytes;

    public ProviderStore(DhtOptions options)
    {
        _options = options;
        _time = options.TimeProvider;
    }

    public int Count { get { lock (_lock) return _count; } }
    public int KeyCount { get { lock (_lock) return _byKey.Count; } }
    public long Bytes { get { lock (_lock) return _bytes; } }

    private static int SizeOf(ProviderRecord r) => 96 + r.Holdings.Bitmap.Length;

    /// <summary>
    /// Stores or refreshes a provider record. Admission per key: one source address (the IP the announce came from; an
    /// IPv6 /64) holds at most <see cref="DhtOptions.MaxProvidersPerSource"/> records, its newest replacing its oldest; a
    /// full key makes room by dropping the oldest record of the address holding the most. So a flood from one address
    /// only ever displaces its own records, and an honest announce made after it is stored. <paramref name="announcedFrom"/>
    /// is the UDP endpoint the announce came from (null: the record's own endpoint, as for this node's own record); its
    /// port matters only with <see cref="DhtOptions.LoopbackAsHosts"/>, where each loopback address:port is its own source.
    /// </summary>
    public DhtStatus Add(Hash256 key, Hash256 nodeId, IPEndPoint endPoint, ProviderHoldings holdings, IPEndPoint? announcedFrom = null)
    {
        var now = _time.GetUtcNow();
        var record = new ProviderRecord(nodeId, DhtAddress.Normalize(endPoint), holdings, TimeSpan.Zero);
        var source = DhtAddress.HostKey(announcedFrom ?? record.EndPoint, _options.LoopbackAsHosts);
        int perSource = _options.MaxProvidersPerSource;
        int size = SizeOf(record);
        lock (_lock)
        {
            if (_byKey.TryGetValue(key, out var providers) && providers.TryGetValue(record.EndPoint, out var existing))
            {
                _bytes += size - existing.Bytes;
                providers[record.EndPoint] = new Stored(record, now, size, source);
                return DhtStatus.Ok;
            }
            if (_count >= _options.MaxProviderRecords || _bytes + size > _options.MaxProviderBytes) ExpireLocked(now);
            if (_count >= _options.MaxProviderRecords || _bytes + size > _options.MaxProviderBytes) return DhtStatus.StoreFull;
            if (!_byKey.TryGetValue(key, out providers))
            {
                providers = [];
                _byKey[key] = providers;
            }
            if (providers.Values.Count(p => p.Source == source) >= perSource) RemoveLocked(providers, OldestOf(providers, source));
            else if (providers.Count >= _options.MaxProvidersPerKey)
            {
                ExpireLocked(now);
                if (!_byKey.TryGetValue(key, out providers)) _byKey[key] = providers = [];
                if (providers.Count >= _options.MaxProvidersPerKey)
                {
                    var (crowded, held) = providers.Values.GroupBy(p => p.Source).Select(g => (g.Key, g.Count())).MaxBy(g => g.Item2);
                    if (held <= 1) return DhtStatus.StoreFull; // every record from another address: nobody floods, keep them
                    RemoveLocked(providers, OldestOf(providers, crowded));
                }
            }
            providers[record.EndPoint] = new Stored(record, now, size, source);
            _count++;
            _bytes += size;
            return DhtStatus.Ok;
        }
    }

    private static IPEndPoint OldestOf(Dictionary<IPEndPoint, Stored> providers, UInt128 source) =>
        providers.Where(p => p.Value.Source == source).MinBy(p => p.Value.Refreshed).Key;

    private void RemoveLocked(Dictionary<IPEndPoint, Stored> providers, IPEndPoint endPoint)
    {
        if (!providers.Remove(endPoint, out var s)) return;
        _count--;
        _bytes -= s.Bytes;
    }

    public bool Remove(Hash256 key, IPEndPoint endPoint)
    {
        lock (_lock)
        {
            if (!_byKey.TryGetValue(key, out var providers) || !providers.Remove(DhtAddress.Normalize(endPoint), out var s)) return false;
            _count--;
            _bytes -= s.Bytes;
            if (providers.Count == 0) _byKey.Remove(key);
            return true;
        }
    }

    /// <summary>
    /// Live records for a key, with their age: one address after another in random order (so different holders hand out
    /// different subsets, and no address crowds the others out of a response), each address's freshest first.
    /// </summary>
    public List<ProviderRecord> Get(Hash256 key)
    {
        var now = _time.GetUtcNow();
        List<List<Stored>> groups;
        lock (_lock)
        {
            if (!_byKey.TryGetValue(key, out var providers)) return [];
            groups = [.. providers.Values.Where(s => now - s.Refreshed < _options.ProviderTtl).GroupBy(s => s.Source)
                .Select(g => g.OrderByDescending(s => s.Refreshed).ToList())];
        }
        Random.Shared.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(groups));
        int total = groups.Sum(g => g.Count);
        var result = new List<ProviderRecord>(total);
        for (int round = 0; result.Count < total; round++)
            foreach (var g in groups)
                if (round < g.Count) result.Add(g[round].Record with { Age = now - g[round].Refreshed });
        return result;
    }
    public void Expire()
    {
        lock (_lock) ExpireLocked(_time.GetUtcNow());
    }

    private void ExpireLocked(DateTimeOffset now)
    {
        List<Hash256>? emptyKeys = null;
        foreach (var (key, providers) in _byKey)
        {
            List<IPEndPoint>? expired = null;
            foreach (var (ep, s) in providers)
                if (now - s.Refreshed >= _options.ProviderTtl) (expired ??= []).Add(ep);
            if (expired == null) continue;
            foreach (var ep in expired)
            {
                _bytes -= providers[ep].Bytes;
                providers.Remove(ep);
                _count--;
            }
            if (providers.Count == 0) (emptyKeys ??= []).Add(key);
        }
        if (emptyKeys != null) foreach (var k in emptyKeys) _byKey.Remove(k);
    }
}
