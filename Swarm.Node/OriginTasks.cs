using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Sources;
using Swarm.Core.Exchange;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>
/// URLs as content (the ingest itself is <see cref="OriginIngest"/>): publish a signed pointer record (task key → content id) in the DHT, and
/// resolve pointers so other nodes fetch through the swarm.
/// </summary>
public static class OriginTasks
{
    public static readonly TimeSpan PointerLifetime = TimeSpan.FromHours(24);

    /// <summary>
    /// Publishes "this task is that content, ingested by me from the origin version <paramref name="validators"/> names" in
    /// the DHT: the sealed content, or (<paramref name="live"/>) the live content of an ingest still running. Returns how
    /// many nodes stored it. Sequence numbers count per publisher: a record never replaces another publisher's.
    /// </summary>
    public static async Task<int> PublishPointerAsync(LocalNode node, Hash256 taskKey, ContentId id, OriginValidators validators, CancellationToken cancellationToken, bool live = false)
    {
        if (node.Dht == null) return 0;
        var record = node.Dht.CreateRecord(taskKey, TaskPointer.Encode(id, live, validators), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            DateTimeOffset.UtcNow + (live ? LeaseLifetime * 4 : PointerLifetime));
        return await node.Dht.PutAsync(record, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every publisher's current pointer for the task (at most one each, the DHT's bounded set), unexpired and well-formed.</summary>
    public static async Task<List<TaskPointer>> ResolvePointersAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken)
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
    public static async Task<TaskPointer?> ResolvePointerAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken, TaskTrust? trust = null)
    {
        var pointers = await ResolvePointersAsync(node, taskKey, cancellationToken).ConfigureAwait(false);
        return await (trust ?? TaskTrust.Any).ChooseAsync(pointers, cancellationToken).ConfigureAwait(false);
    }

    public static readonly TimeSpan LeaseLifetime = TimeSpan.FromSeconds(15);

    /// <summary>The DHT key of the cold-start leases of a task.</summary>
    public static Hash256 LeaseKey(Hash256 taskKey)
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
    public static async Task<LeaseResult> TryTakeLeaseAsync(LocalNode node, Hash256 taskKey, TaskTrust trust, CancellationToken cancellationToken)
    {
        if (node.Dht == null || await node.EnsureJoinedAsync(cancellationToken).ConfigureAwait(false) == 0) return new LeaseResult(true, 0);
        await RenewLeaseAsync(node, taskKey, cancellationToken).ConfigureAwait(false);
        // Read three times over 1.5 s: a lease put at the same moment by another node may reach the DHT a little later.
        int others = 0;
        for (int look = 0; look < 3; look++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
            var live = await LiveLeasesAsync(node, taskKey, trust, cancellationToken).ConfigureAwait(false);
            if (live.Count == 0 && look == 0) live = await LiveLeasesAsync(node, taskKey, trust, cancellationToken).ConfigureAwait(false);
            others = Math.Max(others, live.Count(id => id != node.Key.NodeId));
            if (live.Count > 0 && live.Min() != node.Key.NodeId) return new LeaseResult(false, others);
        }
        return new LeaseResult(true, others);
    }

    private static async Task<List<Hash256>> LiveLeasesAsync(LocalNode node, Hash256 taskKey, TaskTrust trust, CancellationToken cancellationToken)
    {
        var leases = await node.Dht!.GetAsync(LeaseKey(taskKey), null, cancellationToken).ConfigureAwait(false);
        return trust.LiveLeases(leases, node.Key.NodeId, DateTime.UtcNow);
    }

    public static async Task RenewLeaseAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return;
        var now = DateTimeOffset.UtcNow;
        var record = node.Dht.CreateRecord(LeaseKey(taskKey), node.Key.NodeId.ToArray(), now.ToUnixTimeMilliseconds(), now + LeaseLifetime);
        await node.Dht.PutAsync(record, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The node holding the lease for the task (lowest node id among the leases <paramref name="trust"/> believes), or null.</summary>
    public static async Task<Hash256?> LeaseHolderAsync(LocalNode node, Hash256 taskKey, TaskTrust trust, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return null;
        var live = await LiveLeasesAsync(node, taskKey, trust, cancellationToken).ConfigureAwait(false);
        return live.Count == 0 ? null : live.Min();
    }

    /// <summary>The SHA-256 in a <c>sha256:HEX</c> digest; <see cref="FormatException"/> when it is not one.</summary>
    public static Hash256 ParseDigest(string digest)
    {
        const string prefix = "sha256:";
        if (!digest.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || !Hash256.TryParseHex(digest.AsSpan(prefix.Length), out var expected))
            throw new FormatException($"--digest '{digest}' is not sha256:<64 hex digits>");
        return expected;
    }

    /// <summary>Checks the whole content against a <c>sha256:HEX</c> digest before it is exported.</summary>
    public static void VerifyDigest(StoredContent content, string digest)
    {
        var expected = ParseDigest(digest);
        using var stream = new FileStream(content.DataPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 20, FileOptions.SequentialScan);
        var actual = new Hash256(SHA256.HashData(stream));
        if (actual != expected)
            throw new DigestMismatchException($"the content's SHA-256 is sha256:{actual.ToHex()}, not the expected {digest}; the output was not written");
    }
}

/// <summary>What an ingest from an origin produced: the sealed entry and the origin's validators, with the whole content's SHA-256.</summary>
public sealed record Ingested(StoredContent Content, OriginValidators Validators);

/// <summary>Whether this node won the lease, and how many other nodes were asking for the same task at the time.</summary>
public readonly record struct LeaseResult(bool IsHolder, int Others);

/// <summary>The whole content does not match the digest the user asked for.</summary>
public sealed class DigestMismatchException : Exception
{
    public DigestMismatchException(string message) : base(message) { }
    public DigestMismatchException() { }
    public DigestMismatchException(string message, Exception inner) : base(message, inner) { }
}
