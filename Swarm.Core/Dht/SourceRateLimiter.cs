using System.Diagnostics;
using System.Net;

namespace Swarm.Core.Dht;

/// <summary>
/// A token bucket per source address — an IPv4 address or an IPv6 /64 (<see cref="DhtAddress.HostKey"/>), never the port,
/// so a new source port per datagram buys no new budget — checked before a datagram is parsed. (With
/// <see cref="DhtOptions.LoopbackAsHosts"/>, each loopback address:port has its own bucket.) The table of sources is
/// bounded; when it is full of active sources, unknown ones share one overflow bucket, so a flood of spoofed addresses
/// cannot grow memory or starve the sources already tracked.
/// </summary>
internal sealed class SourceRateLimiter
{
    private sealed class TokenBucket(double tokens, long stamp)
    {
        public double Tokens = tokens;
        public long Stamp = stamp;
    }

    private readonly Dictionary<UInt128, TokenBucket> _buckets = [];
    private readonly Lock _lock = new();
    private readonly double _rate;
    private readonly double _burst;
    private readonly bool _loopbackAsHosts;
    private readonly int _maxSources;
    private readonly TokenBucket _overflow;
    private long _lastPrune;

    public SourceRateLimiter(DhtOptions options)
    {
        _rate = options.RatePerSource;
        _burst = options.BurstPerSource;
        _loopbackAsHosts = options.LoopbackAsHosts;
        _maxSources = Math.Max(16, options.MaxTrackedSources);
        _overflow = new TokenBucket(_burst * 4, Stopwatch.GetTimestamp());
        _lastPrune = Stopwatch.GetTimestamp();
    }

    public int TrackedSources { get { lock (_lock) return _buckets.Count; } }

    public bool TryAcquire(IPEndPoint source)
    {
        var key = DhtAddress.HostKey(source, _loopbackAsHosts);
        long now = Stopwatch.GetTimestamp();
        lock (_lock)
        {
            if (!_buckets.TryGetValue(key, out var bucket))
            {
                if (_buckets.Count >= _maxSources) Prune(now);
                if (_buckets.Count >= _maxSources) return Take(_overflow, now, _rate * 4, _burst * 4);
                bucket = new TokenBucket(_burst, now);
                _buckets[key] = bucket;
            }
            else if (Stopwatch.GetElapsedTime(_lastPrune, now) > TimeSpan.FromMinutes(1))
            {
                Prune(now);
            }
            return Take(bucket, now, _rate, _burst);
        }
    }

    private static bool Take(TokenBucket bucket, long now, double rate, double burst)
    {
        double elapsed = Stopwatch.GetElapsedTime(bucket.Stamp, now).TotalSeconds;
        bucket.Tokens = Math.Min(burst, bucket.Tokens + elapsed * rate);
        bucket.Stamp = now;
        if (bucket.Tokens < 1) return false;
        bucket.Tokens -= 1;
        return true;
    }

    /// <summary>Forgets sources whose bucket has refilled completely: they behave, and a fresh bucket is the same as theirs.</summary>
    private void Prune(long now)
    {
        _lastPrune = now;
        List<UInt128>? idle = null;
        foreach (var (key, b) in _buckets)
            if (b.Tokens + Stopwatch.GetElapsedTime(b.Stamp, now).TotalSeconds * _rate >= _burst) (idle ??= []).Add(key);
        if (idle != null) foreach (var k in idle) _buckets.Remove(k);
    }
}
