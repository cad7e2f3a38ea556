using Swarm.Core;
using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node.Mirror;

/// <summary>
/// OCI blobs and manifests in the swarm, keyed by their digest: the task key of a digest is derived from the digest
/// alone (so the same layer pulled from two registries or repositories is one swarm), its pointer record names the
/// content that an ingester read from a registry, and every fetched content is checked against the digest before this
/// node remembers it, serves it again or lets its last bytes out. Also keeps this node's own last resolution of each
/// tag and referrers list, used only when the upstream cannot be reached. This type runs the fetches; <see cref="LocalDigests"/>
/// knows the local copies, <see cref="DigestPointers"/> publishes what this node holds, <see cref="TagResolutions"/> keeps
/// the tags and <see cref="ReferrersIndexes"/> the referrers lists.
/// </summary>
public sealed class OciContent : IDisposable
{
    private readonly LocalNode _node;
    private readonly ILogger _logger;
    private readonly LocalDigests _local;
    private readonly DigestPointers _pointers;
    private readonly TagResolutions _tags;
    private readonly ReferrersIndexes _referrers;
    private readonly ConcurrentDictionary<string, BlobFetch> _fetches = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTime> _published = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Action<long> _fromOrigin;

    public OciContent(LocalNode node, string directory, ILogger logger, Action<long>? fromOrigin = null)
    {
        _node = node;
        _logger = logger;
        _fromOrigin = fromOrigin ?? (_ => { });
        Directory.CreateDirectory(Path.Combine(directory, "tags"));
        _tags = new TagResolutions(Path.Combine(directory, "tags"), logger);
        Directory.CreateDirectory(Path.Combine(directory, "referrers"));
        _referrers = new ReferrersIndexes(Path.Combine(directory, "referrers"), logger);
        _local = new LocalDigests(node, directory, logger);
        _pointers = new DigestPointers(node, _local, logger);
        var stop = _stop.Token;
        _republishing = Task.Run(() => _pointers.RepublishLoopAsync(stop));
    }

    private readonly Task _republishing;

    /// <summary>How often this node publishes again the pointers of every digest it holds (pointer records live 24 h).</summary>
    public static TimeSpan RepublishInterval => DigestPointers.RepublishInterval;

    /// <summary>
    /// Publishes "digest → content" for every digest this node holds complete and verified, so the pointers outlive their
    /// 24-hour records and the node that first ingested them. Returns how many it published.
    /// </summary>
    public Task<int> RepublishAsync(CancellationToken cancellationToken) => _pointers.RepublishAsync(cancellationToken);

    /// <summary>Counts bytes read from a registry outside a blob fetch (manifests resolved by tag).</summary>
    public void CountFromOrigin(long bytes) => _fromOrigin(bytes);

    /// <summary>How long a mirror waits for another node's ingest to publish its pointer before going to the upstream.</summary>
    public TimeSpan WaitForOthers { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Blobs up to this size skip the cold-start election (see <see cref="RunAsync"/>).</summary>
    public const long SmallBlob = 1 << 20;

    /// <summary>What a pointer for a digest says about its content: the digest is the content's SHA-256.</summary>
    public static OriginValidators Validators(string digest, long length) => OriginValidators.ForDigest(length, ContentDigest.Parse(digest));

    public static Hash256 TaskKey(string digest) => Hash256.Of(Encoding.UTF8.GetBytes("swarm/oci/v1\n" + digest));

    /// <summary>
    /// Marks a digest as fetched with credentials: a node without credentials for its registry serves it from the swarm
    /// only after the upstream itself let it read the digest, never on the strength of "the upstream is unreachable".
    /// </summary>
    public Task MarkPrivateAsync(string digest, CancellationToken cancellationToken) => _pointers.MarkPrivateAsync(digest, cancellationToken);

    /// <summary>Whether any node marked the digest as fetched with credentials (see <see cref="MarkPrivateAsync"/>).</summary>
    public Task<bool> IsMarkedPrivateAsync(string digest, CancellationToken cancellationToken) => _pointers.IsMarkedPrivateAsync(digest, cancellationToken);

    /// <summary>Content id → digest of everything this node has verified against a digest.</summary>
    public IReadOnlyDictionary<ContentId, string> Digests => _local.Digests;

    /// <summary>Records that a verified content is the blob with this digest.</summary>
    public void Remember(string digest, ContentId id) => _local.Remember(digest, id);

    /// <summary>A complete, verified local copy of the digest, or null.</summary>
    public StoredContent? Local(string digest) => _local.Local(digest);

    /// <summary>
    /// The running fetch of a digest, started if none runs: through the swarm (its pointer), else one node ingests it from
    /// <paramref name="upstream"/> while the others fetch from it; checked against the digest at the end.
    /// </summary>
    public BlobFetch Fetch(string digest, RegistryClient upstream, string repository, bool manifest)
    {
        while (true)
        {
            if (_fetches.TryGetValue(digest, out var running)) return running;
            var fetch = new BlobFetch(digest);
            if (!_fetches.TryAdd(digest, fetch)) continue;
            _ = Task.Run(() => RunAsync(fetch, upstream, repository, manifest));
            return fetch;
        }
    }

    private async Task RunAsync(BlobFetch fetch, RegistryClient upstream, string repository, bool manifest)
    {
        var ct = _stop.Token;
        var engine = _node.Engine;
        void OnPiece(StoredContent c, int piece) => fetch.Pulse();
        engine.PieceVerified += OnPiece;
        try
        {
            await _local.RemoveRottenCopyAsync(fetch.Digest).ConfigureAwait(false);
            var headers = new List<KeyValuePair<string, string>>();
            RegistryException? upstreamFailure = null;
            if (manifest) headers.Add(new("Accept", string.Join(", ", Oci.ManifestTypes)));
            try
            {
                // Meets the registry's authentication challenge (if any) so the ingest, should this node run it, is authorised.
                if (manifest) fetch.UpstreamLength = (await upstream.HeadManifestAsync(repository, fetch.Digest, ct).ConfigureAwait(false)).Length;
                else fetch.UpstreamLength = await upstream.HeadBlobAsync(repository, fetch.Digest, ct).ConfigureAwait(false);
                if (await upstream.AuthorizationAsync(repository, ct).ConfigureAwait(false) is { } auth) headers.Add(new("Authorization", auth));
            }
            catch (RegistryException e)
            {
                // The upstream cannot serve it (down, or it does not have it): only the swarm can; no lease, no origin retries.
                upstreamFailure = e;
                _logger.LogDebug("upstream HEAD of {Digest} failed ({Error}); only the swarm can serve it", fetch.Digest, e.Message);
            }
            var request = new UrlFetchRequest(manifest ? upstream.ManifestUri(repository, fetch.Digest) : upstream.BlobUri(repository, fetch.Digest), TaskKey(fetch.Digest))
            {
                Headers = headers,
                // A herd on a small blob (a manifest, a config) costs the upstream little; electing one node to fetch it
                // costs every puller the election's wait. Small blobs go to the upstream at once when nobody has them yet.
                WaitForOthers = fetch.UpstreamLength is { } size && size <= SmallBlob ? TimeSpan.Zero : WaitForOthers,
                BackToSource = upstreamFailure == null,
                OnContent = fetch.SetCurrent,
                // The digest is the authority: any pointer may be tried, the content is checked against it before use.
                Digest = ContentDigest.Parse(fetch.Digest),
            };
            long last = 0;
            var originProgress = new InlineProgress<(long Done, long Total)>(p =>
            {
                long delta = p.Done - Interlocked.Exchange(ref last, p.Done);
                if (delta <= 0) return;
                _fromOrigin(delta);
                fetch.CountUpstream(delta);
            });
            UrlFetchResult result;
            try
            {
                result = await UrlFetch.RunAsync(_node, request, null, originProgress, line => _logger.LogInformation("mirror {Digest}: {Line}", fetch.Digest, line), ct).ConfigureAwait(false);
            }
            catch (PeerUnavailableException e) when (upstreamFailure != null)
            {
                throw new PeerUnavailableException($"the swarm does not serve it ({e.Message.Replace(" and --no-back-to-source was given", "", StringComparison.Ordinal)}) and the upstream cannot: {upstreamFailure.Message}", e);
            }
            var content = result.Content;
            // A live content fetched from an ingester is sealed into an ordinary entry (the same bytes): keep that one,
            // since the live copy is dropped once its swarm goes quiet.
            if (content.Manifest.IsLive && _node.Engine.Find(content.Id)?.Sealed is { } sealedCopy) content = sealedCopy;
            try
            {
                ContentDigest.Verify(content, fetch.Digest);
            }
            catch (DigestMismatchException)
            {
                _logger.LogError("the content fetched for {Digest} ({Id}, from {Source}) does not match the digest; it is dropped", fetch.Digest, content.Id, result.FromOrigin ? "the upstream" : "the swarm");
                await _node.RemoveAsync(content.Id).ConfigureAwait(false);
                throw;
            }
            Remember(fetch.Digest, content.Id);
            if (upstream.HasCredentials) await MarkPrivateAsync(fetch.Digest, ct).ConfigureAwait(false);
            // A node that verified a blob from the swarm vouches for it too: the pointer outlives the node that ingested it.
            if (!result.FromOrigin && !content.Manifest.IsLive) _ = _pointers.PublishQuietlyAsync(fetch.Digest, content.Id, content.Layout.Length, ct);
            fetch.Complete(content);
            _logger.LogInformation("mirror: {Digest} ({Bytes} bytes) from {Source}", fetch.Digest, content.Layout.Length, result.FromOrigin ? "the upstream" : "the swarm");
        }
        catch (Exception e)
        {
            if (e is not (OperationCanceledException or PeerUnavailableException or OriginException or IngesterGoneException or DigestMismatchException))
                _logger.LogWarning(e, "mirror: fetching {Digest} failed", fetch.Digest);
            else _logger.LogInformation("mirror: fetching {Digest} failed: {Error}", fetch.Digest, e.Message);
            fetch.Fail(e);
        }
        finally
        {
            engine.PieceVerified -= OnPiece;
            _fetches.TryRemove(new KeyValuePair<string, BlobFetch>(fetch.Digest, fetch));
        }
    }

    /// <summary>
    /// Puts a manifest this node resolved at the upstream into the store and publishes its pointer, so other nodes can
    /// fetch it by digest through the swarm. The pointer is published again at most every 10 minutes.
    /// </summary>
    public async Task PublishManifestAsync(RegistryManifest manifest, bool withCredentials, CancellationToken cancellationToken)
    {
        if (withCredentials) await MarkPrivateAsync(manifest.Digest, cancellationToken).ConfigureAwait(false);
        if (_published.TryGetValue(manifest.Digest, out var at) && DateTime.UtcNow - at < TimeSpan.FromMinutes(10)) return;
        _published[manifest.Digest] = DateTime.UtcNow;
        var content = Local(manifest.Digest);
        if (content == null)
        {
            using var body = new MemoryStream(manifest.Body, writable: false);
            content = await Ingest.StreamAsync(_node.Store, body, manifest.Body.Length, "manifest " + manifest.Digest, _node.Key, null, cancellationToken).ConfigureAwait(false);
            await _node.ServeAsync(content, cancellationToken).ConfigureAwait(false);
            Remember(manifest.Digest, content.Id);
        }
        await TaskPointers.PublishAsync(_node, TaskKey(manifest.Digest), content.Id, Validators(manifest.Digest, content.Layout.Length), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads a whole (small) content, e.g. a manifest.</summary>
    public static byte[] ReadAll(StoredContent content)
    {
        if (content.Layout.Length > Oci.MaxManifestBytes) throw new InvalidDataException($"{content.Id} is {content.Layout.Length:N0} bytes, too large for a manifest");
        var body = new byte[content.Layout.Length];
        content.ReadVerified(0, body); // checked against the piece hashes: a manifest that rotted on disk is never served
        return body;
    }

    /// <summary>Saves what this node itself resolved the tag to at the upstream.</summary>
    public void SaveTag(string registry, string repository, string tag, RegistryManifest manifest) => _tags.Save(registry, repository, tag, manifest);

    /// <summary>What this node itself last resolved the tag to (never a peer's answer), or null.</summary>
    public RegistryManifest? LastResolution(string registry, string repository, string tag) => _tags.Last(registry, repository, tag);

    /// <summary>Saves the referrers answer this node itself received from the upstream.</summary>
    internal void SaveReferrers(string registry, string repository, string subject, string query, ReferrersIndex index) =>
        _referrers.Save(registry, repository, subject, query, index);

    /// <summary>The referrers answer this node itself last received for the query (never a peer's), or null.</summary>
    internal ReferrersIndex? LastReferrers(string registry, string repository, string subject, string query) =>
        _referrers.Last(registry, repository, subject, query);

    public void Dispose()
    {
        _stop.Cancel();
        _stop.Dispose();
    }
}
