using System.Buffers;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node.Mirror;

/// <summary>
/// The pull side of the OCI distribution API for containerd, skopeo and docker on this host: <c>/v2/</c>, manifests by
/// tag (resolved at the upstream every time; this node's own last resolution only when the upstream is unreachable) and
/// by digest, blobs by digest (through the swarm, served as they stream in), HEAD, single byte ranges, and containerd's
/// <c>?ns=REGISTRY</c>. Anything neither the swarm nor the upstream can serve gets a quick 404 so the client moves on to
/// its next host.
/// </summary>
public sealed class RegistryMirror
{
    private readonly OciContent _content;
    private readonly Registries _registries;
    private readonly string _defaultUpstream;
    private readonly ILogger _logger;
    private readonly LocalNode _node;
    private readonly ConcurrentCache _allowed = new();

    public RegistryMirror(LocalNode node, OciContent content, Registries registries, string defaultUpstream, ILogger logger)
    {
        _node = node;
        _content = content;
        _registries = registries;
        _defaultUpstream = defaultUpstream;
        _logger = logger;
    }

    /// <summary>How long to wait for the first bytes of a blob (from the swarm or the upstream) before answering 404.</summary>
    public TimeSpan FirstByteTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>A stream that makes no progress for this long is cut (the client retries or moves on).</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    private long _manifestRequests, _blobRequests, _notFound, _clientErrors, _bytesServed, _cut;

    /// <summary>Counters for /metrics: requests by kind, 404s, other 4xx, blob bytes sent to clients, streams cut after the headers.</summary>
    public (long Manifests, long Blobs, long NotFound, long ClientErrors, long BytesServed, long Cut) Counters =>
        (Interlocked.Read(ref _manifestRequests), Interlocked.Read(ref _blobRequests), Interlocked.Read(ref _notFound),
         Interlocked.Read(ref _clientErrors), Interlocked.Read(ref _bytesServed), Interlocked.Read(ref _cut));

    public async Task HandleAsync(HttpContext context)
    {
        try
        {
            await HandleCoreAsync(context).ConfigureAwait(false);
        }
        finally
        {
            int status = context.Response.StatusCode;
            if (status == 404) Interlocked.Increment(ref _notFound);
            else if (status is >= 400 and < 500) Interlocked.Increment(ref _clientErrors);
        }
    }

    private async Task HandleCoreAsync(HttpContext context)
    {
        var response = context.Response;
        response.Headers["Docker-Distribution-API-Version"] = "registry/2.0";
        var request = context.Request;
        bool head = HttpMethods.IsHead(request.Method);
        if (!head && !HttpMethods.IsGet(request.Method))
        {
            await ErrorAsync(context, 405, "UNSUPPORTED", $"this mirror serves pulls only (GET and HEAD), not {request.Method}").ConfigureAwait(false);
            return;
        }
        string path = request.Path.Value ?? "";
        if (path is "/v2" or "/v2/")
        {
            response.ContentType = "application/json";
            if (!head) await response.WriteAsync("{}").ConfigureAwait(false);
            return;
        }
        if (!path.StartsWith("/v2/", StringComparison.Ordinal))
        {
            await ErrorAsync(context, 404, "UNSUPPORTED", "not an OCI distribution path (/v2/...)").ConfigureAwait(false);
            return;
        }
        string rest = path[4..];
        if (rest.EndsWith("/tags/list", StringComparison.Ordinal))
        {
            await TagListAsync(context, rest[..^"/tags/list".Length], head).ConfigureAwait(false);
            return;
        }
        int m = rest.LastIndexOf("/manifests/", StringComparison.Ordinal);
        int b = rest.LastIndexOf("/blobs/", StringComparison.Ordinal);
        bool isManifest = m > b;
        int cut = Math.Max(m, b);
        if (cut <= 0)
        {
            await ErrorAsync(context, 404, "UNSUPPORTED", "this mirror serves /v2/<name>/manifests/<reference> and /v2/<name>/blobs/<digest> only").ConfigureAwait(false);
            return;
        }
        string name = rest[..cut];
        string reference = rest[(cut + (isManifest ? "/manifests/".Length : "/blobs/".Length))..];
        if (!Oci.IsValidName(name))
        {
            await ErrorAsync(context, 400, "NAME_INVALID", $"'{name}' is not a valid repository name").ConfigureAwait(false);
            return;
        }
        bool byDigest = reference.Contains(':', StringComparison.Ordinal);
        if (byDigest && !Oci.IsSha256Digest(reference))
        {
            bool wellFormed = Oci.LooksLikeDigest(reference);
            await ErrorAsync(context, 400, "DIGEST_INVALID", wellFormed
                ? $"'{reference}': only sha256 digests are supported"
                : $"'{reference}' is not a digest (sha256: and 64 lowercase hex digits)").ConfigureAwait(false);
            return;
        }
        if (!isManifest && !byDigest)
        {
            await ErrorAsync(context, 400, "DIGEST_INVALID", $"'{reference}' is not a digest: blobs are fetched by digest").ConfigureAwait(false);
            return;
        }
        if (isManifest && !byDigest && !Oci.IsValidTag(reference))
        {
            await ErrorAsync(context, 400, "TAG_INVALID", $"'{reference}' is not a valid tag").ConfigureAwait(false);
            return;
        }
        string? ns = request.Query["ns"];
        string registry = string.IsNullOrWhiteSpace(ns) ? _defaultUpstream : ns!;
        if (registry.Contains('/', StringComparison.Ordinal) || registry.Any(char.IsWhiteSpace))
        {
            await ErrorAsync(context, 400, "UNSUPPORTED", $"ns='{registry}' is not a registry host").ConfigureAwait(false);
            return;
        }
        var upstream = _registries.Client(registry);
        Interlocked.Increment(ref isManifest ? ref _manifestRequests : ref _blobRequests);
        try
        {
            if (isManifest && !byDigest) await TagAsync(context, upstream, name, reference, head).ConfigureAwait(false);
            else await ByDigestAsync(context, upstream, name, reference, isManifest, head).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // the client went away
        }
    }

    /// <summary>The tag list is the upstream's (passed through, with its paging); tags never come from peers.</summary>
    private async Task TagListAsync(HttpContext context, string name, bool head)
    {
        if (!Oci.IsValidName(name))
        {
            await ErrorAsync(context, 400, "NAME_INVALID", $"'{name}' is not a valid repository name").ConfigureAwait(false);
            return;
        }
        string? ns = context.Request.Query["ns"];
        var upstream = _registries.Client(string.IsNullOrWhiteSpace(ns) ? _defaultUpstream : ns!);
        var query = string.Join("&", context.Request.Query.Where(q => q.Key is "n" or "last").Select(q => $"{q.Key}={Uri.EscapeDataString(q.Value.ToString())}"));
        try
        {
            using var answer = await upstream.SendAsync(HttpMethod.Get, new Uri(upstream.BaseUri, $"/v2/{name}/tags/list{(query.Length > 0 ? "?" + query : "")}"), name,
                ["application/json"], context.RequestAborted).ConfigureAwait(false);
            if (!answer.IsSuccessStatusCode)
            {
                await ErrorAsync(context, 404, "NAME_UNKNOWN", $"{upstream.Registry} answered {(int)answer.StatusCode} for the tags of {name}").ConfigureAwait(false);
                return;
            }
            byte[] body = await answer.Content.ReadAsByteArrayAsync(context.RequestAborted).ConfigureAwait(false);
            if (body.Length > Oci.MaxManifestBytes * 4) throw new RegistryException(RegistryFailure.Invalid, $"{upstream.Registry} sent a tag list of {body.Length:N0} bytes");
            context.Response.ContentType = "application/json";
            if (answer.Headers.TryGetValues("Link", out var link)) context.Response.Headers["Link"] = link.ToArray();
            context.Response.ContentLength = body.Length;
            if (!head) await context.Response.Body.WriteAsync(body, context.RequestAborted).ConfigureAwait(false);
        }
        catch (RegistryException e)
        {
            await ErrorAsync(context, 404, "NAME_UNKNOWN", $"the tags of {name} come only from {upstream.Registry}: {e.Message}").ConfigureAwait(false);
        }
    }

    /// <summary>A manifest by tag: always resolved at the upstream; this node's own last resolution when it cannot be reached.</summary>
    private async Task TagAsync(HttpContext context, RegistryClient upstream, string name, string tag, bool head)
    {
        RegistryManifest manifest;
        try
        {
            manifest = await upstream.GetManifestAsync(name, tag, context.RequestAborted).ConfigureAwait(false);
            _content.CountFromOrigin(manifest.Body.Length);
            _content.SaveTag(upstream.Registry, name, tag, manifest);
            _ = PublishInBackground(manifest, upstream.HasCredentials);
        }
        catch (RegistryException e) when (e.Failure == RegistryFailure.Unavailable)
        {
            var last = _content.LastResolution(upstream.Registry, name, tag);
            if (last == null)
            {
                await ErrorAsync(context, 404, "MANIFEST_UNKNOWN", $"{e.Message}; this node has not resolved {name}:{tag} before").ConfigureAwait(false);
                return;
            }
            _logger.LogInformation("mirror: {Registry} unreachable; {Name}:{Tag} is {Digest} as this node last resolved it", upstream.Registry, name, tag, last.Digest);
            manifest = last;
        }
        catch (RegistryException e)
        {
            await ErrorAsync(context, 404, e.Failure == RegistryFailure.Denied ? "DENIED" : "MANIFEST_UNKNOWN", e.Message).ConfigureAwait(false);
            return;
        }
        await WriteManifestAsync(context, manifest, head).ConfigureAwait(false);
    }

    private async Task PublishInBackground(RegistryManifest manifest, bool withCredentials)
    {
        try
        {
            await _content.PublishManifestAsync(manifest, withCredentials, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _logger.LogWarning("mirror: could not put manifest {Digest} into the swarm: {Error}", manifest.Digest, e.Message);
        }
    }

    private static async Task WriteManifestAsync(HttpContext context, RegistryManifest manifest, bool head)
    {
        var response = context.Response;
        response.ContentType = manifest.MediaType;
        response.Headers["Docker-Content-Digest"] = manifest.Digest;
        response.Headers.ETag = $"\"{manifest.Digest}\"";
        response.ContentLength = manifest.Body.Length;
        if (!head) await response.Body.WriteAsync(manifest.Body, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>
    /// Whether this node may serve the digest from the swarm or its store. The upstream decides: a HEAD with this node's
    /// credentials (or anonymously, when it has none) must succeed. When the upstream cannot be reached, a registry with
    /// credentials configured refuses (a private image never reaches a node that could not fetch it itself), and an
    /// anonymous one serves unless some node marked the digest as fetched with credentials. Answers are cached a minute.
    /// Returns null when allowed, else why not.
    /// </summary>
    private async Task<string?> RefusalAsync(RegistryClient upstream, string name, string digest, bool manifest, CancellationToken cancellationToken)
    {
        string key = $"{upstream.Registry}/{name}@{digest}";
        if (_allowed.Fresh(key)) return null;
        try
        {
            if (manifest) await upstream.HeadManifestAsync(name, digest, cancellationToken).ConfigureAwait(false);
            else await upstream.HeadBlobAsync(name, digest, cancellationToken).ConfigureAwait(false);
            _allowed.Add(key);
            return null;
        }
        catch (RegistryException e) when (e.Failure == RegistryFailure.Unavailable && !upstream.HasCredentials)
        {
            if (await _content.IsMarkedPrivateAsync(digest, cancellationToken).ConfigureAwait(false))
                return $"{upstream.Registry} is unreachable ({e.Message}) and {digest} was fetched with credentials elsewhere; this node has none for {upstream.Registry}, so it is not served from the swarm";
            _allowed.Add(key);
            return null;
        }
        catch (RegistryException e)
        {
            return upstream.HasCredentials
                ? $"{upstream.Registry} did not confirm that this node may read {name}@{digest} with its credentials ({e.Message}); not serving it from the swarm"
                : $"{upstream.Registry} does not let this node read {name}@{digest} ({e.Message})";
        }
    }

    private async Task ByDigestAsync(HttpContext context, RegistryClient upstream, string name, string digest, bool manifest, bool head)
    {
        var ct = context.RequestAborted;
        string unknown = manifest ? "MANIFEST_UNKNOWN" : "BLOB_UNKNOWN";
        if (await RefusalAsync(upstream, name, digest, manifest, ct).ConfigureAwait(false) is { } refusal)
        {
            await ErrorAsync(context, 404, unknown, refusal).ConfigureAwait(false);
            return;
        }
        var local = _content.Local(digest);
        if (manifest)
        {
            StoredContent content;
            try
            {
                content = local ?? await _content.Fetch(digest, upstream, name, manifest: true).Completion.WaitAsync(FirstByteTimeout, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                await ErrorAsync(context, 404, unknown, $"neither the swarm nor {upstream.Registry} could serve {name}@{digest}: {e.Message}").ConfigureAwait(false);
                return;
            }
            byte[] body;
            try
            {
                body = OciContent.ReadAll(content);
            }
            catch (PieceRottenException e)
            {
                _logger.LogWarning("mirror: the stored copy of {Digest} failed its hash check ({Error}); answered 503, the next request fetches it again", digest, e.Message);
                context.Response.Headers.RetryAfter = "1";
                await ErrorAsync(context, 503, unknown, $"the node's stored copy of {digest} failed its hash check and was dropped; retry, and it is fetched again").ConfigureAwait(false);
                return;
            }
            await WriteManifestAsync(context, new RegistryManifest(digest, Oci.DetectManifestType(body), body), head).ConfigureAwait(false);
            return;
        }
        var fetch = local == null ? _content.Fetch(digest, upstream, name, manifest: false) : null;
        StoredContent? Current() => local ?? fetch!.Current(_node.Engine);
        // The length: from the local copy, else from the content the fetch goes into as soon as it is known.
        long length;
        var firstDeadline = DateTime.UtcNow + FirstByteTimeout;
        while (true)
        {
            if (Current() is { } c)
            {
                length = c.Layout.Length;
                break;
            }
            if (fetch!.Completion.IsFaulted || DateTime.UtcNow > firstDeadline)
            {
                string why = fetch.Completion.Exception?.InnerException?.Message ?? $"nothing arrived within {FirstByteTimeout.TotalSeconds:0} s";
                await ErrorAsync(context, 404, unknown, $"neither the swarm nor {upstream.Registry} could serve {name}@{digest}: {why}").ConfigureAwait(false);
                return;
            }
            await fetch.WaitAsync(TimeSpan.FromMilliseconds(250), ct).ConfigureAwait(false);
        }
        var response = context.Response;
        response.Headers["Docker-Content-Digest"] = digest;
        response.Headers.ETag = $"\"{digest}\"";
        response.Headers.AcceptRanges = "bytes";
        response.ContentType = "application/octet-stream";
        long start = 0, end = length - 1;
        if (context.Request.Headers.Range.ToString() is { Length: > 0 } rangeHeader && TryParseRange(rangeHeader, length, out long rs, out long re, out bool satisfiable))
        {
            if (!satisfiable)
            {
                response.Headers.ContentRange = $"bytes */{length}";
                await ErrorAsync(context, 416, "BLOB_UNKNOWN", $"range {rangeHeader} is outside the blob's {length} bytes").ConfigureAwait(false);
                return;
            }
            (start, end) = (rs, re);
            response.StatusCode = 206;
            response.Headers.ContentRange = $"bytes {start}-{end}/{length}";
        }
        response.ContentLength = end - start + 1;
        if (head || length == 0) return;
        try
        {
            await StreamAsync(context, fetch, Current, start, end + 1, length).ConfigureAwait(false);
        }
        catch (PieceRottenException e) when (!context.Response.HasStarted)
        {
            // Nothing was sent yet: say so instead of a 200; the piece is dropped, so the next request fetches the blob again.
            _logger.LogWarning("mirror: the stored copy of {Digest} failed its hash check ({Error}); answered 503, the next request fetches it again", digest, e.Message);
            Interlocked.Increment(ref _cut);
            context.Response.Clear();
            context.Response.Headers.RetryAfter = "1";
            await ErrorAsync(context, 503, "BLOB_UNKNOWN", $"the node's stored copy of {digest} failed its hash check and was dropped; retry, and it is fetched again").ConfigureAwait(false);
        }
        catch (Exception failure) when (failure is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            var e = failure;
            _logger.LogWarning("mirror: serving {Digest} stopped after headers were sent: {Error}", digest, e.Message);
            Interlocked.Increment(ref _cut);
            context.Abort(); // the client sees a cut body, never bytes that failed verification
        }
    }

    /// <summary>
    /// Streams [<paramref name="from"/>, <paramref name="to"/>) of a blob as its pieces are verified. The last bytes of the
    /// blob are held back until the whole blob has matched its digest, so a client never receives a complete wrong blob.
    /// </summary>
    private async Task StreamAsync(HttpContext context, BlobFetch? fetch, Func<StoredContent?> current, long from, long to, long length)
    {
        var ct = context.RequestAborted;
        const int Tail = 64 * 1024;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(256 * 1024);
        try
        {
            long pos = from;
            int disposedInARow = 0;
            var lastProgress = DateTime.UtcNow;
            while (pos < to)
            {
                var content = current();
                bool verifiedWhole = fetch == null || fetch.Completion.IsCompletedSuccessfully;
                long limit = verifiedWhole || to < length - Tail ? to : Math.Max(from, length - Tail);
                if (content != null && pos < limit)
                {
                    if (content.Layout.Length != length) throw new InvalidDataException($"the swarm's content for the blob is {content.Layout.Length} bytes, not {length}");
                    int piece = (int)(pos / content.Layout.PieceSize);
                    if (content.IsComplete || content.Verified[piece])
                    {
                        long pieceEnd = content.Layout.PieceOffset(piece) + content.Layout.PieceLength(piece);
                        int n = (int)Math.Min(Math.Min(buffer.Length, pieceEnd - pos), limit - pos);
                        try
                        {
                            // Checked against the piece's hashes: bytes that changed on disk are never sent.
                            content.ReadVerified(pos, buffer.AsSpan(0, n));
                        }
                        catch (ObjectDisposedException)
                        {
                            // A live entry was just sealed or dropped: the next round reads its successor.
                            if (++disposedInARow > 40) throw new InvalidDataException("the content being served went away from the store");
                            await Task.Delay(25, ct).ConfigureAwait(false);
                            continue;
                        }
                        disposedInARow = 0;
                        await context.Response.Body.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                        Interlocked.Add(ref _bytesServed, n);
                        pos += n;
                        lastProgress = DateTime.UtcNow;
                        continue;
                    }
                }
                if (fetch == null) throw new InvalidDataException("the local copy is incomplete");
                if (fetch.Completion.IsFaulted) throw fetch.Completion.Exception!.InnerException!;
                if (DateTime.UtcNow - lastProgress > StallTimeout) throw new TimeoutException($"no new bytes for {StallTimeout.TotalSeconds:0} s");
                await fetch.WaitAsync(TimeSpan.FromMilliseconds(250), ct).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Parses a single <c>bytes=</c> range (first-last, first-, -suffix). False: no usable single range (serve the whole
    /// blob, as RFC 9110 allows). <paramref name="satisfiable"/> false: well-formed but outside the blob (416).
    /// </summary>
    public static bool TryParseRange(string header, long length, out long start, out long end, out bool satisfiable)
    {
        start = end = 0;
        satisfiable = true;
        if (!header.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase)) return false;
        string spec = header[6..].Trim();
        if (spec.Contains(',', StringComparison.Ordinal)) return false;
        int dash = spec.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0) return false;
        string a = spec[..dash].Trim(), b = spec[(dash + 1)..].Trim();
        const System.Globalization.NumberStyles Digits = System.Globalization.NumberStyles.None;
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        if (a.Length == 0)
        {
            if (!long.TryParse(b, Digits, inv, out long suffix)) return false;
            if (suffix == 0 || length == 0) { satisfiable = false; return true; }
            start = Math.Max(0, length - suffix);
            end = length - 1;
            return true;
        }
        if (!long.TryParse(a, Digits, inv, out start)) return false;
        if (b.Length == 0) end = length - 1;
        else if (!long.TryParse(b, Digits, inv, out end) || end < start) return false;
        if (start >= length) { satisfiable = false; return true; }
        end = Math.Min(end, length - 1);
        return true;
    }

    private static async Task ErrorAsync(HttpContext context, int status, string code, string message)
    {
        var response = context.Response;
        if (response.HasStarted) return;
        response.StatusCode = status;
        response.ContentType = "application/json";
        if (HttpMethods.IsHead(context.Request.Method)) return;
        await response.WriteAsync(JsonSerializer.Serialize(new { errors = new[] { new { code, message } } })).ConfigureAwait(false);
    }

    /// <summary>Keys remembered for a minute.</summary>
    private sealed class ConcurrentCache
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, DateTime> _until = new();
        public bool Fresh(string key) => _until.TryGetValue(key, out var until) && until > DateTime.UtcNow;
        public void Add(string key)
        {
            _until[key] = DateTime.UtcNow.AddMinutes(1);
            if (_until.Count > 10_000) foreach (var old in _until.Where(p => p.Value < DateTime.UtcNow).Select(p => p.Key).ToList()) _until.TryRemove(old, out _);
        }
    }
}
