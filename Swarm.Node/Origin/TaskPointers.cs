using Swarm.Core.Content;
using Swarm.Core.Sources;

namespace Swarm.Node;

/// <summary>
/// URLs as content in the DHT: a signed pointer record (task key → content id and the origin version it was ingested
/// from) that the ingester publishes, and that other nodes resolve to fetch through the swarm.
/// </summary>
public static class TaskPointers
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(24);

    /// <summary>
    /// Publishes "this task is that content, ingested by me from the origin version <paramref name="validators"/> names" in
    /// the DHT: the sealed content, or (<paramref name="live"/>) the live content of an ingest still running. Returns how
    /// many nodes stored it. Sequence numbers count per publisher: a record never replaces another publisher's.
    /// </summary>
    public static async Task<int> PublishAsync(LocalNode node, Hash256 taskKey, ContentId id, OriginValidators validators, CancellationToken cancellationToken, bool live = false)
    {
        if (node.Dht == null) return 0;
        var record = node.Dht.CreateRecord(taskKey, TaskPointer.Encode(id, live, validators), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            DateTimeOffset.UtcNow + (live ? ColdStartLease.Lifetime * 4 : Lifetime));
        return await node.Dht.PutAsync(record, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every publisher's current pointer for the task (at most one each, the DHT's bounded set), unexpired and well-formed.</summary>
    public static async Task<List<TaskPointer>> ResolveAllAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return [];
        var records = await node.Dht.GetAsync(taskKey, null, cancellationToken).ConfigureAwait(false);
        var now = DateTimeOffset.UtcNow;
        var pointers = new List<TaskPointer>();
        foreach (var r in records)
            if (r.Expires > now && TaskPointer.TryDecode(r) is { } p) pointers.Add(p);
        return pointers;
    }

    /// <summary>The pointer <paramref name="trust"/> chooses for the task (by default: any publisher's, sealed and newest first), or null.</summary>
    public static async Task<TaskPointer?> ResolveAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken, TaskTrust? trust = null)
    {
        var pointers = await ResolveAllAsync(node, taskKey, cancellationToken).ConfigureAwait(false);
        return await (trust ?? TaskTrust.Any).ChooseAsync(pointers, cancellationToken).ConfigureAwait(false);
    }
}
