namespace Swarm.Core.Dht;

internal enum ReplayVerdict
{
    /// <summary>Never seen, inside the window: accept (it is now remembered).</summary>
    Fresh,
    /// <summary>Its timestamp is outside the window (or below the floor the cache had to raise): it may be a replay nobody remembers.</summary>
    OutsideWindow,
    /// <summary>The very same datagram was accepted before.</summary>
    Replayed,
}

/// <summary>
/// Remembers the MACs of accepted authenticated datagrams, so each is accepted once. Memory is fixed: at most
/// <c>capacity</c> entries (about 60 bytes each: 65,536 take about 4 MiB).
/// </summary>
/// <remarks>
/// <para>The invariant that makes it safe: every datagram ever accepted either is still remembered or has a timestamp at or
/// below <see cref="Floor"/>, and nothing stamped at or below the floor is accepted. An entry is forgotten only by raising
/// the floor to its timestamp, so forgetting never lets a replay through.</para>
/// <para>An entry is forgotten when its timestamp falls out of the window (the window check alone refuses it from then on),
/// or, when the cache is full, the entry with the oldest timestamp is forgotten early: the lower edge of the window moves
/// up to it. Only authenticated, fresh, never-seen datagrams are added — a replay adds nothing and an outsider cannot make
/// valid MACs — so an attacker replaying captured traffic cannot make the node forget. What a full cache costs: under more
/// than <c>capacity</c> fresh authenticated datagrams within one window (about 1,100 a second with the defaults, from
/// members only), datagrams stamped further back than the newest <c>capacity</c> are refused as too old, so members whose
/// clocks lag, or whose datagrams were delayed, lose datagrams until the load drops.</para>
/// <para>The floor also covers the clock stepping back: entries already forgotten stay refused.</para>
/// </remarks>
internal sealed class ReplayCache
{
    private readonly Dictionary<UInt128, long> _seen;
    private readonly PriorityQueue<UInt128, long> _byStamp = new(); // oldest timestamp first
    private readonly Lock _lock = new();
    private readonly long _windowMs;
    private readonly int _capacity;
    private long _floor = long.MinValue;

    public ReplayCache(TimeSpan window, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(window, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _windowMs = (long)window.TotalMilliseconds;
        _capacity = capacity;
        _seen = new Dictionary<UInt128, long>(Math.Min(capacity, 4096));
    }

    public int Count { get { lock (_lock) return _seen.Count; } }

    /// <summary>Datagrams stamped at or before this (unix ms) are refused; <see cref="long.MinValue"/> until something was forgotten.</summary>
    public long Floor { get { lock (_lock) return _floor; } }

    /// <summary>Checks one authenticated datagram, identified by its MAC, stamped <paramref name="stampedMs"/>, at our time <paramref name="nowMs"/>; remembers it when fresh.</summary>
    public ReplayVerdict Check(UInt128 mac, long stampedMs, long nowMs)
    {
        if (stampedMs < nowMs - _windowMs || stampedMs > nowMs + _windowMs) return ReplayVerdict.OutsideWindow;
        lock (_lock)
        {
            // Forget what fell out of the window: the window check refuses those by itself now.
            while (_byStamp.TryPeek(out var old, out long stamp) && stamp < nowMs - _windowMs) Forget(old, stamp);
            if (stampedMs <= _floor) return ReplayVerdict.OutsideWindow;
            if (_seen.ContainsKey(mac)) return ReplayVerdict.Replayed;
            if (_seen.Count >= _capacity)
            {
                // Full of live entries: the oldest goes, and the window's lower edge rises to it. A datagram no newer than
                // that oldest one would be refused right after, so it is refused without forgetting anything.
                _byStamp.TryPeek(out var oldest, out long oldestStamp);
                if (stampedMs <= oldestStamp) return ReplayVerdict.OutsideWindow;
                Forget(oldest, oldestStamp);
            }
            _seen.Add(mac, stampedMs);
            _byStamp.Enqueue(mac, stampedMs);
            return ReplayVerdict.Fresh;
        }
    }

    private void Forget(UInt128 mac, long stamp)
    {
        _byStamp.Dequeue();
        _seen.Remove(mac);
        if (stamp > _floor) _floor = stamp;
    }
}
