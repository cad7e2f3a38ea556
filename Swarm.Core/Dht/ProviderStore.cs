using System.Net;
using Swarm.Core.Content;

namespace Swarm.Core.Dht;

/// <summary>
/// Provider records this node stores for others: per key, one record per provider endpoint (IP from the announcing datagram,
/// TCP port from the message). Bounded in records per key, records overall and bytes; records expire after the TTL.
/// </summary>
internal sealed class ProviderStore
{
    private sealed record Stored(ProviderRecord Record, DateTimeOffset Refreshed, int Bytes);

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

    public DhtStatus Add(Hash256 key, Hash256 nodeId, IPEndPoint endPoint, ProviderHoldings holdings)
    {
        var now = _time.GetUtcNow();
        var record = new ProviderRecord(nodeId, DhtAddress.Normalize(endPoint), holdings, TimeSpan.Zero);
        int size = SizeOf(record);
        lock (_lock)
        {
            if (!_byKey.TryGetValue(key, out var providers))
            {
                if (_count >= _options.MaxProviderRecords || _bytes + size > _options.MaxProviderBytes) ExpireLocked(now);
                if (_count >= _options.MaxProviderRecords || _bytes + size > _options.MaxProviderBytes) return DhtStatus.StoreFull;
                providers = [];
                _byKey[key] = providers;
            }
            if (providers.TryGetValue(record.EndPoint, out var existing))
            {
                _bytes += size - existing.Bytes;
                providers[record.EndPoint] = new Stored(record, now, size);
                return DhtStatus.Ok;
            }
            if (providers.Count >= _options.MaxProvidersPerKey || _count >= _options.MaxProviderRecords || _bytes + size > _options.MaxProviderBytes)
            {
                ExpireLocked(now);
                if (providers.Count >= _options.MaxProvidersPerKey || _count >= _options.MaxProviderRecords || _bytes + size > _options.MaxProviderBytes)
                {
                    if (providers.Count == 0) _byKey.Remove(key);
                    return DhtStatus.StoreFull;
                }
            }
            providers[record.EndPoint] = new Stored(record, now, size);
            _count++;
            _bytes += size;
            return DhtStatus.Ok;
        }
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

    /// <summary>Live records for a key, with their age, in random order (so different holders hand out different subsets).</summary>
    public List<ProviderRecord> Get(Hash256 key)
    {
        var now = _time.GetUtcNow();
        var result = new List<ProviderRecord>();
        lock (_lock)
        {
            if (!_byKey.TryGetValue(key, out var providers)) return result;
            foreach (var s in providers.Values)
                if (now - s.Refreshed < _options.ProviderTtl) result.Add(s.Record with { Age = now - s.Refreshed });
        }
        Random.Shared.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(result));
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
