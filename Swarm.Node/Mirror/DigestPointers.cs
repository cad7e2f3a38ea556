using System.Text;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;

namespace Swarm.Node.Mirror;

/// <summary>
/// What this node says in the DHT about digests: their pointers ("digest → content", published again every
/// <see cref="RepublishInterval"/> so they outlive their 24-hour records and the node that first ingested them) and the
/// marks of digests fetched with credentials.
/// </summary>
internal sealed class DigestPointers(LocalNode node, LocalDigests local, ILogger logger)
{
    /// <summary>How often this node publishes again the pointers of every digest it holds (pointer records live 24 h).</summary>
    public static readonly TimeSpan RepublishInterval = TimeSpan.FromHours(6);

    /// <summary>Publishes the pointers again every <see cref="RepublishInterval"/> until <paramref name="stop"/>.</summary>
    public async Task RepublishLoopAsync(CancellationToken stop)
    {
        try
        {
            while (true)
            {
                await Task.Delay(RepublishInterval, stop).ConfigureAwait(false);
                int n = await RepublishAsync(stop).ConfigureAwait(false);
                logger.LogInformation("mirror: published the pointers of {Count} digest(s) again", n);
            }
        }
        catch (OperationCanceledException) { }
        catch (ObjectDisposedException) { }
    }

    public async Task PublishQuietlyAsync(string digest, ContentId id, long length, CancellationToken cancellationToken)
    {
        try
        {
            await TaskPointers.PublishAsync(node, OciContent.TaskKey(digest), id, OciContent.Validators(digest, length), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            logger.LogDebug("mirror: publishing the pointer of {Digest} failed: {Error}", digest, e.Message);
        }
    }

    /// <summary>
    /// Publishes "digest → content" for every digest this node holds complete and verified, so the pointers outlive their
    /// 24-hour records and the node that first ingested them. Returns how many it published.
    /// </summary>
    public async Task<int> RepublishAsync(CancellationToken cancellationToken)
    {
        int published = 0;
        foreach (var digest in local.Known)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (local.Local(digest) is not { } content) continue;
            try
            {
                await TaskPointers.PublishAsync(node, OciContent.TaskKey(digest), content.Id, OciContent.Validators(digest, content.Layout.Length), cancellationToken).ConfigureAwait(false);
                published++;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning("mirror: publishing the pointer of {Digest} failed: {Error}", digest, e.Message);
            }
        }
        return published;
    }

    private static Hash256 PrivateKey(string digest) => Hash256.Of(Encoding.UTF8.GetBytes("swarm/oci-private/v1\n" + digest));

    /// <summary>
    /// Marks a digest as fetched with credentials: a node without credentials for its registry serves it from the swarm
    /// only after the upstream itself let it read the digest, never on the strength of "the upstream is unreachable".
    /// </summary>
    public async Task MarkPrivateAsync(string digest, CancellationToken cancellationToken)
    {
        if (node.Dht is not { } dht) return;
        var record = dht.CreateRecord(PrivateKey(digest), [1], DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow + TaskPointers.Lifetime);
        await dht.PutAsync(record, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether any node marked the digest as fetched with credentials (see <see cref="MarkPrivateAsync"/>).</summary>
    public async Task<bool> IsMarkedPrivateAsync(string digest, CancellationToken cancellationToken)
    {
        if (node.Dht is not { } dht) return false;
        var records = await dht.GetAsync(PrivateKey(digest), null, cancellationToken).ConfigureAwait(false);
        return records.Any(r => r.Expires > DateTimeOffset.UtcNow);
    }
}
