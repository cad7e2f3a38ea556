using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>
/// URLs as content: ingest from the origin once, publish a signed pointer record (task key → content id) in the DHT, and
/// resolve pointers so other nodes fetch through the swarm.
/// </summary>
public static class OriginTasks
{
    public static readonly TimeSpan PointerLifetime = TimeSpan.FromHours(24);

    /// <summary>Fetches the URL from its origin into the store (hashing and signing pieces on the way) and returns the entry.</summary>
    public static async Task<StoredContent> IngestAsync(LocalNode node, Uri url, OriginClient origin, IProgress<(long Done, long Total)>? progress, CancellationToken cancellationToken)
    {
        var response = await origin.GetAsync(url, cancellationToken).ConfigureAwait(false);
        long? length = response.Content.Headers.ContentLength;
        if (length is { } known)
        {
            // A cut connection is resumed (with a range request where the origin allows it) instead of failing the ingest.
            await using var resuming = await ResumingOriginStream.OpenAsync(origin, url, response, known, cancellationToken).ConfigureAwait(false);
            return await node.Store.IngestAsync(resuming, known, url.ToString(), node.Key,
                progress == null ? null : new Progress<long>(done => progress.Report((done, known))), cancellationToken).ConfigureAwait(false);
        }
        using var _ = response;
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        // No Content-Length: the piece layout needs the length, so spool to a temporary file first.
        string spool = Path.Combine(node.Store.TempRoot, "spool-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        try
        {
            await using (var file = new FileStream(spool, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
                await body.CopyToAsync(file, cancellationToken).ConfigureAwait(false);
            return await node.Store.IngestFileAsync(spool, node.Key, null, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(spool);
        }
    }

    /// <summary>Publishes "this task is that content, ingested by me" in the DHT. Returns how many nodes stored it.</summary>
    public static async Task<int> PublishPointerAsync(LocalNode node, Hash256 taskKey, ContentId id, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return 0;
        var record = node.Dht.CreateRecord(taskKey, id.Value.ToArray(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow + PointerLifetime);
        return await node.Dht.PutAsync(record, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The content id of the newest valid pointer for the task, or null when nobody has published one.</summary>
    public static async Task<ContentId?> ResolvePointerAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return null;
        var records = await node.Dht.GetAsync(taskKey, null, cancellationToken).ConfigureAwait(false);
        var newest = records.Where(r => r.Value.Length == Hash256.Size && r.Expires > DateTimeOffset.UtcNow).OrderByDescending(r => r.Sequence).FirstOrDefault();
        return newest == null ? null : new ContentId(new Hash256(newest.Value.Span));
    }

    public static readonly TimeSpan LeaseLifetime = TimeSpan.FromSeconds(15);

    private static Hash256 LeaseKey(Hash256 taskKey)
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
    /// expires and the others elect again. A node with an empty routing table is alone and goes to the origin.
    /// </summary>
    public static async Task<LeaseResult> TryTakeLeaseAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken)
    {
        if (node.Dht == null || await node.EnsureJoinedAsync(cancellationToken).ConfigureAwait(false) == 0) return new LeaseResult(true, 0);
        await RenewLeaseAsync(node, taskKey, cancellationToken).ConfigureAwait(false);
        // Read three times over 1.5 s: a lease put at the same moment by another node may reach the DHT a little later.
        int others = 0;
        for (int look = 0; look < 3; look++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
            var live = await LiveLeasesAsync(node, taskKey, cancellationToken).ConfigureAwait(false);
            if (live.Count == 0 && look == 0) live = await LiveLeasesAsync(node, taskKey, cancellationToken).ConfigureAwait(false);
            others = Math.Max(others, live.Count(id => id != node.Key.NodeId));
            if (live.Count > 0 && live.Min() != node.Key.NodeId) return new LeaseResult(false, others);
        }
        return new LeaseResult(true, others);
    }

    private static async Task<List<Hash256>> LiveLeasesAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken)
    {
        var leases = await node.Dht!.GetAsync(LeaseKey(taskKey), null, cancellationToken).ConfigureAwait(false);
        return [.. leases.Where(r => r.Expires > DateTimeOffset.UtcNow).Select(r => r.Publisher).Distinct()];
    }

    public static async Task RenewLeaseAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return;
        var now = DateTimeOffset.UtcNow;
        var record = node.Dht.CreateRecord(LeaseKey(taskKey), node.Key.NodeId.ToArray(), now.ToUnixTimeMilliseconds(), now + LeaseLifetime);
        await node.Dht.PutAsync(record, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The node holding the lease for the task (lowest node id among live leases), or null when none is live.</summary>
    public static async Task<Hash256?> LeaseHolderAsync(LocalNode node, Hash256 taskKey, CancellationToken cancellationToken)
    {
        if (node.Dht == null) return null;
        var live = await LiveLeasesAsync(node, taskKey, cancellationToken).ConfigureAwait(false);
        return live.Count == 0 ? null : live.Min();
    }

    /// <summary>Checks the whole content against a <c>sha256:HEX</c> digest before it is exported.</summary>
    public static void VerifyDigest(StoredContent content, string digest)
    {
        const string prefix = "sha256:";
        if (!digest.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || !Hash256.TryParseHex(digest.AsSpan(prefix.Length), out var expected))
            throw new FormatException($"--digest '{digest}' is not sha256:<64 hex digits>");
        using var stream = new FileStream(content.DataPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 20, FileOptions.SequentialScan);
        var actual = new Hash256(SHA256.HashData(stream));
        if (actual != expected)
            throw new DigestMismatchException($"the content's SHA-256 is sha256:{actual.ToHex()}, not the expected {digest}; the output was not written");
    }
}

/// <summary>Whether this node won the lease, and how many other nodes were asking for the same task at the time.</summary>
public readonly record struct LeaseResult(bool IsHolder, int Others);

/// <summary>The whole content does not match the digest the user asked for.</summary>
public sealed class DigestMismatchException : Exception
{
    public DigestMismatchException(string message) : base(message) { }
    public DigestMismatchException() { }
    public DigestMismatchException(string message, Exception inner) : base(message, inner) { }
}
