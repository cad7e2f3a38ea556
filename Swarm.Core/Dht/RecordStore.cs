using Swarm.Core.Content;

namespace Swarm.Core.Dht;

/// <summary>
/// Signed records this node stores: per key, the highest-sequence record of each publisher, until it expires (capped at
/// <see cref="DhtOptions.MaxRecordLifetime"/>). Bounded in records per key, records overall and bytes. Callers verify
/// signatures before <see cref="Put"/>.
/// </summary>
internal sealed class RecordStore
{
    private sealed record Stored(SignedRecord Record, DateTimeOffset DropAt, int Bytes);

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

    /// <summary>Stores a verified record: refused if expired, older than (or conflicting with) the stored one, or the store is full.</summary>
    public DhtStatus Put(SignedRecord record)
    {
        var now = _time.GetUtcNow();
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
                byPublisher[record.Publisher] = new Stored(record, dropAt, size);
                return DhtStatus.Ok;
            }
            if (_count >= _options.MaxRecords || _bytes + size > _options.MaxRecordBytes || (byPublisher?.Count ?? 0) >= _options.MaxRecordsPerKey)
            {
                ExpireLocked(now);
                _byKey.TryGetValue(record.Key, out byPublisher);
                if (_count >= _options.MaxRecords || _bytes + size > _options.MaxRecordBytes || (byPublisher?.Count ?? 0) >= _options.MaxRecordsPerKey)
                    return DhtStatus.StoreFull;
            }
            if (byPublisher == null)
            {
                byPublisher = [];
                _byKey[record.Key] = byPublisher;
            }
            if (byPublisher.Remove(record.Publisher, out var expired))
            {
                _count--;
                _bytes -= expired.Bytes;
            }
            byPublisher[record.Publisher] = new Stored(record, dropAt, size);
            _count++;
            _bytes += size;
            return DhtStatus.Ok;
        }
    }

    /// <summary>Live records for a key (of one publisher when given), highest sequence first.</summary>
    public List<SignedRecord> Get(Hash256 key, Hash256? publisher = null)
    {
        var now = _time.GetUtcNow();
        var result = new List<SignedRecord>();
        lock (_lock)
        {
            if (!_byKey.TryGetValue(key, out var byPublisher)) return result;
            foreach (var (pub, s) in byPublisher)
                if (s.DropAt > now && (publisher == null || pub == publisher.Value)) result.Add(s.Record);
        }
        result.Sort((a, b) => b.Sequence.CompareTo(a.Sequence));
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
