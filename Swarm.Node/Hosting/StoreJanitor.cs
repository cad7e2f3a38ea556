using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;

namespace Swarm.Node;

/// <summary>
/// Keeps the store within its limits: when the content in it passes the high watermark of the quota, the least recently
/// used content is evicted until usage is under the low watermark; content unused for longer than the task TTL is
/// evicted too. Content in use — a task fetching or exporting it, or a download in progress — is never evicted; content
/// peers are fetching from this node counts as used.
/// </summary>
public sealed class StoreJanitor(NodeRuntime runtime, ILogger<StoreJanitor> logger) : BackgroundService
{
    private readonly Dictionary<ContentId, long> _uploadedAtLastLook = [];
    private long _evicted, _evictedBytes;

    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);
    /// <summary>How long a sealed live entry stays after its last use (peers may still be finishing it).</summary>
    public static readonly TimeSpan LiveCopyLinger = TimeSpan.FromMinutes(5);

    /// <summary>Content evicted since start, and their bytes.</summary>
    public long Evicted => Interlocked.Read(ref _evicted);
    public long EvictedBytes => Interlocked.Read(ref _evictedBytes);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        runtime.ContentUsed += id => runtime.Node.Store.Touch(id);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Interval, stoppingToken).ConfigureAwait(false);
                await SweepAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                logger.LogWarning("store sweep failed: {Error}", e.Message);
            }
        }
    }

    /// <summary>One pass: marks served content as used, then evicts by TTL and by quota.</summary>
    public async Task SweepAsync()
    {
        var node = runtime.Node;
        var config = runtime.Config;
        foreach (var swarm in node.Engine.Swarms)
        {
            long up = swarm.BytesUploaded;
            if (_uploadedAtLastLook.TryGetValue(swarm.Id, out long before) && up != before) node.Store.Touch(swarm.Id); // peers fetched from it
            _uploadedAtLastLook[swarm.Id] = up;
        }
        var inUse = runtime.InUse.ToHashSet();
        // Being filled (a download, or an ingest from the origin) or being fetched from while it is filled: in use.
        foreach (var swarm in node.Engine.Swarms)
            if (swarm.IsDownloading || swarm.Content is { IsComplete: false } || (swarm.Content is { Manifest.IsLive: true } && swarm.PeerCount > 0)) inUse.Add(swarm.Id);

        var ids = node.Store.List();
        var copies = LiveCopies(node, ids); // live id -> sealed id, for complete live entries whose sealed entry exists
        // A sealed live entry is a second name (hard link) for the sealed entry's bytes: it counts nothing.
        var entries = ids.Select(id => (Id: id, Used: node.Store.LastUsed(id), Bytes: copies.ContainsKey(id) ? 0L : node.Store.DiskUsage(id))).ToList();
        var now = DateTime.UtcNow;
        // ... and is dropped once its swarm has been quiet for a while.
        foreach (var (live, sealedId) in copies)
        {
            var entry = entries.FirstOrDefault(e => e.Id == live);
            if (entry.Id != live || inUse.Contains(live) || now - entry.Used < LiveCopyLinger) continue;
            await EvictAsync(live, 0, $"the live copy of {sealedId}, which the node keeps").ConfigureAwait(false);
            entries.Remove(entry);
        }
        if (config.TaskTtl > TimeSpan.Zero)
        {
            foreach (var e in entries.Where(e => !inUse.Contains(e.Id) && now - e.Used > config.TaskTtl).ToList())
            {
                await EvictAsync(e.Id, e.Bytes, $"unused for {(now - e.Used).TotalHours:0.#} h (task-ttl {config.TaskTtl})").ConfigureAwait(false);
                entries.Remove(e);
            }
        }
        if (config.Quota <= 0) return;
        long usage = entries.Sum(e => e.Bytes);
        if (usage <= config.Quota * config.HighWatermark) return;
        long target = (long)(config.Quota * config.LowWatermark);
        foreach (var e in entries.Where(e => !inUse.Contains(e.Id) && e.Bytes > 0).OrderBy(e => e.Used))
        {
            if (usage <= target) break;
            string why = $"the store holds {usage:N0} bytes, over {config.HighWatermark:P0} of the {config.Quota:N0}-byte quota";
            // Its live copies go with it (the same bytes under another name), unless peers still fetch them.
            foreach (var (live, _) in copies.Where(c => c.Value == e.Id && !inUse.Contains(c.Key))) await EvictAsync(live, 0, why).ConfigureAwait(false);
            await EvictAsync(e.Id, e.Bytes, why).ConfigureAwait(false);
            usage -= e.Bytes;
        }
        if (usage > target)
            logger.LogWarning("the store holds {Usage:N0} bytes, over the quota's low watermark, but everything left is in use", usage);
    }

    private readonly Dictionary<ContentId, ContentId?> _sealedOf = [];

    /// <summary>Complete live entries whose sealed entry is in the store (cached: an entry's manifest does not change).</summary>
    private Dictionary<ContentId, ContentId> LiveCopies(LocalNode node, IReadOnlyList<ContentId> ids)
    {
        var present = ids.ToHashSet();
        foreach (var gone in _sealedOf.Keys.Where(k => !present.Contains(k)).ToList()) _sealedOf.Remove(gone);
        var result = new Dictionary<ContentId, ContentId>();
        foreach (var id in ids)
        {
            if (!_sealedOf.TryGetValue(id, out var sealedId))
            {
                try
                {
                    var served = node.Engine.Find(id)?.Content;
                    using var opened = served == null ? node.Store.TryOpen(id) : null;
                    var entry = served ?? opened;
                    if (entry == null) continue;
                    sealedId = entry.Manifest.IsLive && entry.IsComplete ? entry.Manifest.Seal()?.Id : null;
                    if (!entry.Manifest.IsLive || sealedId != null) _sealedOf[id] = sealedId; // a partial live entry may still complete
                }
                catch (Exception e) when (e is IOException or InvalidDataException)
                {
                    continue;
                }
            }
            if (sealedId is { } s && present.Contains(s)) result[id] = s;
        }
        return result;
    }

    private async Task EvictAsync(ContentId id, long bytes, string why)
    {
        if (await runtime.Node.RemoveAsync(id).ConfigureAwait(false))
        {
            Interlocked.Increment(ref _evicted);
            Interlocked.Add(ref _evictedBytes, bytes);
            _uploadedAtLastLook.Remove(id);
            logger.LogInformation("evicted {Id} ({Bytes:N0} bytes): {Why}", id, bytes, why);
        }
    }
}
