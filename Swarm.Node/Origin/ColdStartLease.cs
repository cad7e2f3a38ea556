using Swarm.Core.Content;

namespace Swarm.Node;

/// <summary>
/// The cold-start election: when no pointer exists for a task, the nodes that want it publish short leases and the
/// lowest node id among the live ones ingests from the origin, once, while the rest wait for its pointer.
/// </summary>
public static class ColdStartLease
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(15);

    /// <summary>The DHT key of the cold-start leases of a task.</summary>
    public static Hash256 Key(Hash256 taskKey)
    {
        Span<byte> b = stackalloc byte[14 + Hash256.Size];
        "swarm/lease/v1"u8.CopyTo(b);
        taskKey.CopyTo(b[14..]);
        return Hash256.Of(b);
    }

    /// <summary>
    /// Cold start without a herd: every node that finds no pointer publishes a short lease record for the task, waits a
    /// moment for the others' to arrive, and the lowest node id among the live leases ingests from the origin; the rest wait
    /// for its pointer and fetch through the swarm. The holder renews its lease while it ingests; if it dies, the lease
    /// expires and the others elect again. A node with an empty routing table is alone and goes to the origin. Which
    /// leases count is <paramref name="trust"/>'s call (lifetime capped, holders without an ingest ignored).
    /// </summary>
    public static async Task<LeaseResult> TryTakeAsync(LocalNode node, Hash256 taskKey, TaskTrust trust, CancellationToken cancellationToken)
    {
        if (node.Dht == null || await node.EnsureJoinedAsync(cancellationToken).ConfigureAwait(false) == 0) return new LeaseResult(true, 0);
        await RenewAsync(node, taskKey, cancellationToken).ConfigureAwait(false);
        // Read three times over 1.5 s: a lease put at the same moment by another node may reach the DHT a little later.
        int others = 0;
        for (int look = 0; look < 3; look++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
            var live = await LiveAsync(node, taskKey, trust, cancellationToken).ConfigureAwait(false);
            if (live.Count == 0 && look == 0) live = await LiveAsync(node, taskKey, trust, cancellationToken).ConfigureAwait(false);
            others = Math.Max(others, live.Count(id => id != node.Key.NodeId));
            if (live.Count > 0 && live.Min() != node.Key.NodeId) return new LeaseResult(false, others);
        }
        return new LeaseResult(true, others);
    }

    private static async Task<List<Hash256>> LiveAsync(LocalNode node, Hash256 taskKey, TaskTrust trust, CancellationToken cancellationToken)
    {
        var leases = await node.Dht!.GetAsync(Key(taskKey), null, cancellationToken).ConfigureAwait(false);
        return trust.LiveLeases(leases, node.Key.NodeId, DateTime.UtcNow);
    }

    public static async Task RenewAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return;
        var now = DateTimeOffset.UtcNow;
        var record = node.Dht.CreateRecord(Key(taskKey), node.Key.NodeId.ToArray(), now.ToUnixTimeMilliseconds(), now + Lifetime);
        await node.Dht.PutAsync(record, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The node holding the lease for the task (lowest node id among the leases <paramref name="trust"/> believes), or null.</summary>
    public static async Task<Hash256?> HolderAsync(LocalNode node, Hash256 taskKey, TaskTrust trust, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return null;
        var live = await LiveAsync(node, taskKey, trust, cancellationToken).ConfigureAwait(false);
        return live.Count == 0 ? null : live.Min();
    }
}
