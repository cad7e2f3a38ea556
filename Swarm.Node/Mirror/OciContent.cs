using Swarm.Core;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
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
/// tag, used only when the upstream cannot be reached.
/// </summary>
public sealed class OciContent : IDisposable
{
    private readonly LocalNode _node;
    private readonly ILogger _logger;
    private readonly string _directory;
    private readonly ConcurrentDictionary<string, ContentId> _digests = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, BlobFetch> _fetches = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTime> _published = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _indexLock = new();
    private readonly Action<long> _fromOrigin;

    public OciContent(LocalNode node, string directory, ILogger logger, Action<long>? fromOrigin = null)
    {
        _node = node;
        _logger = logger;
        _directory = directory;
        _fromOrigin = fromOrigin ?? (_ => { });
        Directory.CreateDirectory(Path.Combine(directory, "tags"));
        LoadIndex();
        _republishing = Task.Run(RepublishLoopAsync);
    }

    private readonly Task _republishing;

    /// <summary>How often this node publishes again the pointers of every digest it holds (pointer records live 24 h).</summary>
    public static readonly TimeSpan RepublishInterval = TimeSpan.FromHours(6);

    private async Task RepublishLoopAsync()
    {
        try
        {
            while (true)
            {
                await Task.Delay(RepublishInterval, _stop.Token).ConfigureAwait(false);
                int n = await RepublishAsync(_stop.Token).ConfigureAwait(false);
                _logger.LogInformation("mirror: published the pointers of {Count} digest(s) again", n);
            }
        }
        catch (OperationCanceledException) { }
        catch (ObjectDisposedException) { }
    }

    private async Task PublishQuietlyAsync(string digest, ContentId id, long length, CancellationToken cancellationToken)
    {
        try
        {
            await TaskPointers.PublishAsync(_node, TaskKey(digest), id, Validators(digest, length), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _logger.LogDebug("mirror: publishing the pointer of {Digest} failed: {Error}", digest, e.Message);
        }
    }

    /// <summary>
    /// Publishes "digest → content" for every digest this node holds complete and verified, so the pointers outlive their
    /// 24-hour records and the node that first ingested them. Returns how many it published.
    /// </summary>
    public async Task<int> RepublishAsync(CancellationToken cancellationToken)
    {
        int published = 0;
        foreach (var digest in _digests.Keys.ToList())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (Local(digest) is not { } content) continue;
            try
            {
                await TaskPointers.PublishAsync(_node, TaskKey(digest), content.Id, Validators(digest, content.Layout.Length), cancellationToken).ConfigureAwait(false);
                published++;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _logger.LogWarning("mirror: publishing the pointer of {Digest} failed: {Error}", digest, e.Message);
            }
        }
        return published;
    }

    /// <summary>Counts bytes read from a registry outside a blob fetch (manifests resolved by tag).</summary>
    public void CountFromOrigin(long bytes) => _fromOrigin(bytes);

    /// <summary>How long a mirror waits for another node's ingest to publish its pointer before going to the upstream.</summary>
    public TimeSpan WaitForOthers { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>Blobs up to this size skip the cold-start election (see <see cref="RunAsync"/>).</summary>
    public const long SmallBlob = 1 << 20;

    /// <summary>What a pointer for a digest says about its content: the digest is the content's SHA-256.</summary>
    public static OriginValidators Validators(string digest, long length) => OriginValidators.ForDigest(length, ContentDigest.Parse(digest));

    public static Hash256 TaskKey(string digest) => Hash256.Of(Encoding.UTF8.GetBytes("swarm/oci/v1\n" + digest));

    private static Hash256 PrivateKey(string digest) => Hash256.Of(Encoding.UTF8.GetBytes("swarm/oci-private/v1\n" + digest));

    /// <summary>
    /// Marks a digest as fetched with credentials: a node without credentials for its registry serves it from the swarm
    /// only after the upstream itself let it read the digest, never on the strength of "the upstream is unreachable".
    /// </summary>
    public async Task MarkPrivateAsync(string digest, CancellationToken cancellationToken)
    {
        if (_node.Dht is not { } dht) return;
        var record = dht.CreateRecord(PrivateKey(digest), [1], DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow + TaskPointers.Lifetime);
        await dht.PutAsync(record, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether any node marked the digest as fetched with credentials (see <see cref="MarkPrivateAsync"/>).</summary>
    public async Task<bool> IsMarkedPrivateAsync(string digest, CancellationToken cancellationToken)
    {
        if (_node.Dht is not { } dht) return false;
        var records = await dht.GetAsync(PrivateKey(digest), null, cancellationToken).ConfigureAwait(false);
        return records.Any(r => r.Expires > DateTimeOffset.UtcNow);
    }

    private string IndexPath => Path.Combine(_directory, "digests");

    private void LoadIndex()
    {
        if (!File.Exists(IndexPath)) return;
        foreach (var line in File.ReadLines(IndexPath))
        {
            var parts = line.Split(' ');
            if (parts.Length == 2 && Oci.IsSha256Digest(parts[0]) && ContentId.TryParse(ContentId.Scheme + parts[1], out var id)) _digests[parts[0]] = id;
        }
    }

    /// <summary>Content id → digest of everything this node has verified against a digest.</summary>
    public IReadOnlyDictionary<ContentId, string> Digests
    {
        get
        {
            var map = new Dictionary<ContentId, string>();
            foreach (var (digest, id) in _digests) map[id] = digest;
            return map;
        }
    }

    /// <summary>Records that a verified content is the blob with this digest.</summary>
    public void Remember(string digest, ContentId id)
    {
        if (_digests.TryGetValue(digest, out var known) && known == id) return;
        _digests[digest] = id;
        lock (_indexLock) File.AppendAllText(IndexPath, $"{digest} {id.Hex}\n");
    }

    /// <summary>A complete, verified local copy of the digest, or null.</summary>
    public StoredContent? Local(string digest)
    {
        if (!_digests.TryGetValue(digest, out var id)) return null;
        if (_node.Engine.Find(id)?.Content is { IsComplete: true } served) return served;
        try
        {
            var opened = _node.Store.TryOpen(id);
            if (opened is { IsComplete: true })
            {
                var swarm = _node.Engine.Serve(opened);
                if (swarm.Content != opened) opened.Dispose();
                return swarm.Content;
            }
            // It was complete when remembered: a partial entry now lost pieces to rot in the store. The refetch removes it first.
            if (opened != null) _rotten[digest] = id;
            opened?.Dispose();
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            _logger.LogWarning("the stored copy of {Digest} is damaged: {Error}", digest, e.Message);
        }
        _digests.TryRemove(digest, out _); // evicted or damaged: fetch it again
        return null;
    }

    /// <summary>Digests whose remembered content is in the store but no longer complete (pieces dropped as rotten).</summary>
    private readonly ConcurrentDictionary<string, ContentId> _rotten = new(StringComparer.Ordinal);

    /// <summary>
    /// Before a digest whose copy rotted is fetched again: removes that copy and the live entry it was sealed from. The
    /// sealed entry's data file is a hard link to the live one's, so the live entry holds the same rotten bytes while its
    /// journal still calls them verified, and the engine keeps its writer lock: a new ingest from the upstream would resume
    /// into it (same origin version, same live id) and fail to take the lock on every request, or seal the rotten bytes
    /// again. Removed, the refetch starts from a fresh entry, from the swarm or the upstream.
    /// </summary>
    private async Task RemoveRottenCopyAsync(string digest)
    {
        if (!_rotten.TryRemove(digest, out var id) || _digests.ContainsKey(digest)) return;
        foreach (var swarm in _node.Engine.Swarms)
        {
            if (swarm.Content is { Manifest.IsLive: true } live && swarm.Sealed?.Id == id)
                await _node.RemoveAsync(live.Id).ConfigureAwait(false);
        }
        await _node.RemoveAsync(id).ConfigureAwait(false);
        _logger.LogInformation("mirror: the stored copy of {Digest} ({Id}) lost pieces that failed their hash check; removed, it is fetched again", digest, id.ToUri());
    }

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
            await RemoveRottenCopyAsync(fetch.Digest).ConfigureAwait(false);
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
                if (delta > 0) _fromOrigin(delta);
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
            if (!result.FromOrigin && !content.Manifest.IsLive) _ = PublishQuietlyAsync(fetch.Digest, content.Id, content.Layout.Length, ct);
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

    // ---- this node's own tag resolutions ----

    private string TagPath(string registry, string repository, string tag) =>
        Path.Combine(_directory, "tags", Hash256.Of(Encoding.UTF8.GetBytes($"{Oci.CanonicalRegistry(registry)}/{repository}:{tag}")).ToHex() + ".json");

    private sealed record SavedTag(string Digest, string MediaType, string Body);

    public void SaveTag(string registry, string repository, string tag, RegistryManifest manifest)
    {
        string path = TagPath(registry, repository, tag);
        try
        {
            File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(new SavedTag(manifest.Digest, manifest.MediaType, Convert.ToBase64String(manifest.Body))));
            File.Move(path + ".tmp", path, overwrite: true);
        }
        catch (IOException e)
        {
            _logger.LogWarning("could not save the resolution of {Repository}:{Tag}: {Error}", repository, tag, e.Message);
        }
    }

    /// <summary>What this node itself last resolved the tag to (never a peer's answer), or null.</summary>
    public RegistryManifest? LastResolution(string registry, string repository, string tag)
    {
        string path = TagPath(registry, repository, tag);
        try
        {
            if (!File.Exists(path)) return null;
            var saved = JsonSerializer.Deserialize<SavedTag>(File.ReadAllText(path));
            if (saved == null) return null;
            byte[] body = Convert.FromBase64String(saved.Body);
            return Oci.Sha256Digest(body) == saved.Digest ? new RegistryManifest(saved.Digest, saved.MediaType, body) : null;
        }
        catch (Exception e) when (e is IOException or JsonException or FormatException)
        {
            return null;
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _stop.Dispose();
    }
}

/// <summary>
/// One digest being fetched: which content it is going into right now (it can change: a swarm download that fails goes
/// to the upstream), a pulse on every verified piece, and the verified result.
/// </summary>
public sealed class BlobFetch
{
    private readonly TaskCompletionSource<StoredContent> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _pulse = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _lock = new();
    private ContentId? _current;

    internal BlobFetch(string digest) => Digest = digest;

    public string Digest { get; }
    /// <summary>The verified content (checked against the digest).</summary>
    public Task<StoredContent> Completion => _done.Task;
    /// <summary>The length the upstream gave in its HEAD, when it answered.</summary>
    public long? UpstreamLength { get; internal set; }

    internal void SetCurrent(ContentId id)
    {
        lock (_lock) _current = id;
        Pulse();
    }

    internal void Pulse() => Interlocked.Exchange(ref _pulse, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    internal void Complete(StoredContent content)
    {
        _done.TrySetResult(content);
        Pulse();
    }

    internal void Fail(Exception e)
    {
        _done.TrySetException(e);
        Pulse();
    }

    /// <summary>The content the bytes are going into now (possibly partial), or null while it is not known yet.</summary>
    public StoredContent? Current(SwarmEngine engine)
    {
        if (_done.Task.IsCompletedSuccessfully) return _done.Task.Result;
        ContentId? current;
        lock (_lock) current = _current;
        if (current is { } id && engine.Find(id) is { } swarm) return swarm.Sealed ?? swarm.Content;
        return null;
    }

    /// <summary>Waits for the next verified piece, a change of content or the end, at most <paramref name="timeout"/>.</summary>
    public async Task WaitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var pulse = Volatile.Read(ref _pulse).Task;
        if (_done.Task.IsCompleted) return;
        try
        {
            await pulse.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException) { }
    }
}
