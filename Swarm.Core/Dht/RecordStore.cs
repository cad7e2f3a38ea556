using Swarm.Core.Content;

namespace Swarm.Core.Dht;

/// <summary>
/// Signed records this node stores: per key, the highest-sequence record of each publisher, until it expires (capped at
/// <see cref="DhtOptions.MaxRecordLifetime"/>). Bounded in records per key, records overall and bytes. Callers verify
/// signatures before <see cref="Put"/>.
/// </summary>
internal sealed class RecordStore
{
    private sealed record Stored(SignedRecord Record, DateTimeOffset DropAt, int Bytes, UInt128 Source, DateTimeOffset StoredAt);

    private readonly Dictionary<Hash256, Dictionary<Hash256, Stored>> _byKey = [];
    private readonly Lock _lock = new();
    private readonly DhtOptions _options;
    private readonly TimeProvider _time;
    private int _count;
    private long _bytes;

    public RecordStore(DhtOptions options)
    {
        _options = options;
        _time = options.TimeProvider;
    }

    public int Count { get { lock (_lock) return _count; } }
    public long Bytes { get { lock (_lock) return _bytes; } }

    private static int SizeOf(SignedRecord r) => 128 + r.Value.Length + r.PublicKey.Length + r.Signature.Length;

    /// <summary>
    /// Stores a verified record: refused if expired, older than (or conflicting with) the stored one, or the store is full.
    /// Sequence numbers count per publisher: a record never replaces another publisher's. Admission per key, by the
    /// address the put came from (<paramref name="source"/>, the UDP endpoint; null: this node's own; its port matters only
    /// with <see cref="DhtOptions.LoopbackAsHosts"/>): one address holds at most
    /// <see cref="DhtOptions.MaxRecordsPerSource"/> publishers' records, its newest replacing its oldest, and a full key
    /// makes room by dropping the oldest record of the address holding the most — so publishers minted by the thousand
    /// behind one address never keep another address's record out.
    /// </summary>
    public DhtStatus Put(SignedRecord record, System.Net.IPEndPoint? source = null)
    {
        var now = _time.GetUtcNow();
        var from = source == null ? 0 : DhtAddress.HostKey(source, _options.LoopbackAsHosts);
        if (record.Expires <= now) return DhtStatus.Invalid;
        var dropAt = record.Expires < now + _options.MaxRecordLifetime ? record.Expires : now + _options.MaxRecordLifetime;
        int size = SizeOf(record);
        lock (_lock)
        {
            if (_byKey.TryGetValue(record.Key, out var byPublisher) && byPublisher.TryGetValue(record.Publisher, out var existing) && existing.DropAt > now)
            {
                if (record.Sequence < existing.Record.Sequence) return DhtStatus.StaleSequence;
                // Same sequence: only a re-put of the identical record (it refreshes the lifetime); a different value needs a new sequence.
                if (record.Sequence == existing.Record.Sequence && !record.SameAs(existing.Record)) return DhtStatus.StaleSequence;
                _bytes += size - existing.Bytes;
                byPublisher[record.Publisher] = new Stored(record, dropAt, size, existing.Source, now);
                return DhtStatus.Ok;
            }
            if (_count >= _options.MaxRecords || _bytes + size > _options.MaxRecordBytes)
            {
                ExpireLocked(now);
                if (_count >= _options.MaxRecords || _bytes + size > _options.MaxRecordBytes) return DhtStatus.StoreFull;
            }
            if (!_byKey.TryGetValue(record.Key, out byPublisher))
            {
                byPublisher = [];
                _byKey[record.Key] = byPublisher;
            }
            if (byPublisher.Remove(record.Publisher, out var expired))
            {
                _count--;
                _bytes -= expired.Bytes;
            }
            if (byPublisher.Values.Count(r => r.Source == from) >= _options.MaxRecordsPerSource) RemoveOldestLocked(byPublisher, from);
            else if (byPublisher.Count >= _options.MaxRecordsPerKey)
            {
                var (crowded, held) = byPublisher.Values.GroupBy(r => r.Source).Select(g => (g.Key, g.Count())).MaxBy(g => g.Item2);
                if (held <= 1) return DhtStatus.StoreFull; // every publisher behind another address: nobody floods, keep them
                RemoveOldestLocked(byPublisher, crowded);
            }
            byPublisher[record.Publisher] = new Stored(record, dropAt, size, from, now);
            _count++;
            _bytes += size;
            return DhtStatus.Ok;
        }
    }

    private void RemoveOldestLocked(Dictionary<Hash256, Stored> byPublisher, UInt128 source)
    {
        var oldest = byPublisher.Where(p => p.Value.Source == source).MinBy(p => p.Value.StoredAt);
        byPublisher.Remove(oldest.Key);
        _count--;
        _bytes -= oldest.Value.Bytes;
    }

    /// <summary>
    /// Live records for a key (of one publisher when given): one source address after another, each address's most
    /// recently stored first, so a response that holds only a few records never carries one address's alone. (Sequence
    /// numbers are compared per publisher only; a huge one buys no place in the order.)
    /// </summary>
    public List<SignedRecord> Get(Hash256 key, Hash256? publisher = null)
    {
        var now = _time.GetUtcNow();
        List<List<Stored>> groups;
        lock (_lock)
        {
            if (!_byKey.TryGetValue(key, out var byPublisher)) return [];
            groups = [.. byPublisher.Where(p => p.Value.DropAt > now && (publisher == null || p.Key == publisher.Value)).Select(p => p.Value)
                .GroupBy(s => s.Source).OrderByDescending(g => g.Max(s => s.StoredAt)).Select(g => g.OrderByDescending(s => s.StoredAt).ToList())];
        }
        int total = groups.Sum(g => g.Count);
        var result = new List<SignedRecord>(total);
        for (int round = 0; result.Count < total; round++)
            foreach (var g in groups)
                if (round < g.Count) result.Add(g[round].Record);
        return result;
    }

    public void Expire()
    {
        lock (_lock) ExpireLocked(_time.GetUtcNow());
    }

    private void ExpireLocked(DateTimeOffset now)
    {
        List<Hash256>? emptyKeys = null;
        foreach (var (key, byPublisher) in _byKey)
        {
            List<Hash256>? expired = null;
            foreach (var (pub, s) in byPublisher)
                if (s.DropAt <= now) (expired ??= []).Add(pub);
            if (expired == null) continue;
            foreach (var pub in expired)
            {
                _bytes -= byPublisher[pub].Bytes;
                byPublisher.Remove(pub);
                _count--;
            }
            if (byPublisher.Count == 0) (emptyKeys ??= []).Add(key);
        }
        if (emptyKeys != null) foreach (var k in emptyKeys) _byKey.Remove(k);
    }
}
