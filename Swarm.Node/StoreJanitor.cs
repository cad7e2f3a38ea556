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
            if (!_uploadedAtLastLook.TryGetValue(swarm.Id, out long before) || up != before) node.Store.Touch(swarm.Id);
            _uploadedAtLastLook[swarm.Id] = up;
        }
        var inUse = runtime.InUse.ToHashSet();
        foreach (var swarm in node.Engine.Swarms) if (swarm.IsDownloading) inUse.Add(swarm.Id);

        var entries = node.Store.List().Select(id => (Id: id, Used: node.Store.LastUsed(id), Bytes: node.Store.DiskUsage(id))).ToList();
        var now = DateTime.UtcNow;
        // A live ingest's entry, once sealed, is a second name for the same bytes: drop it when its swarm is quiet.
        foreach (var swarm in node.Engine.Swarms)
        {
            if (swarm.Sealed == null || swarm.PeerCount > 0 || inUse.Contains(swarm.Id)) continue;
            var entry = entries.FirstOrDefault(e => e.Id == swarm.Id);
            if (entry.Id != swarm.Id || now - entry.Used < LiveCopyLinger) continue;
            await EvictAsync(swarm.Id, entry.Bytes, $"the live copy of {swarm.Sealed.Id}, which the node keeps").ConfigureAwait(false);
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
        foreach (var e in entries.Where(e => !inUse.Contains(e.Id)).OrderBy(e => e.Used))
        {
            if (usage <= target) break;
            await EvictAsync(e.Id, e.Bytes, $"the store holds {usage:N0} bytes, over {config.HighWatermark:P0} of the {config.Quota:N0}-byte quota").ConfigureAwait(false);
            usage -= e.Bytes;
        }
        if (usage > target)
            logger.LogWarning("the store holds {Usage:N0} bytes, over the quota's low watermark, but everything left is in use", usage);
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
