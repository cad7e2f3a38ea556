using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Swarm.Core.Sources;

namespace Swarm.Node.Mirror;

/// <summary>
/// The pull side of the OCI distribution API for containerd, skopeo and docker on this host: <c>/v2/</c>, manifests by
/// tag (resolved at the upstream every time; this node's own last resolution only when the upstream is unreachable) and
/// by digest, blobs by digest (through the swarm, served as they stream in), HEAD, single byte ranges, and containerd's
/// <c>?ns=REGISTRY</c>. Anything neither the swarm nor the upstream can serve gets a quick 404 so the client moves on to
/// its next host. This type routes and checks requests; <see cref="ManifestEndpoint"/> and <see cref="BlobEndpoint"/>
/// answer them, after <see cref="UpstreamPermission"/> agreed for anything by digest.
/// </summary>
public sealed class RegistryMirror
{
    private readonly Registries _registries;
    private readonly string _defaultUpstream;
    private readonly MirrorCounters _counters = new();
    private readonly UpstreamPermission _permission;
    private readonly ManifestEndpoint _manifests;
    private readonly BlobEndpoint _blobs;
    private IReadOnlySet<string>? _known; // registries that are metric labels of their own

    public RegistryMirror(LocalNode node, OciContent content, Registries registries, string defaultUpstream, ILogger logger)
    {
        _registries = registries;
        _defaultUpstream = defaultUpstream;
        _permission = new UpstreamPermission(content);
        _manifests = new ManifestEndpoint(content, logger);
        _blobs = new BlobEndpoint(node, content, _counters, logger);
    }

    /// <summary>How long to wait for the first bytes of a blob or a manifest by digest (from the swarm or the upstream) before answering 404.</summary>
    public TimeSpan FirstByteTimeout
    {
        get => _blobs.FirstByteTimeout;
        init => _blobs.FirstByteTimeout = _manifests.FirstByteTimeout = value;
    }

    /// <summary>A stream that makes no progress for this long is cut (the client retries or moves on).</summary>
    public TimeSpan StallTimeout
    {
        get => _blobs.StallTimeout;
        init => _blobs.StallTimeout = value;
    }

    /// <summary>
    /// Registries a client may send the mirror to with <c>?ns=</c> (host names, lower case); null: any (the default, as
    /// containerd's mirrors expect). The default upstream is always allowed. Where local clients are not trusted, this keeps
    /// them from making the node fetch from arbitrary hosts.
    /// </summary>
    public IReadOnlySet<string>? AllowedRegistries { get; init; }

    /// <summary>The registry a request names (its <c>?ns=</c>, else the default upstream); null after answering 400 or 403.</summary>
    private async Task<string?> RegistryOrRefuseAsync(HttpContext context)
    {
        string? ns = context.Request.Query["ns"];
        string registry = string.IsNullOrWhiteSpace(ns) ? _defaultUpstream : ns!;
        if (registry.Contains('/', StringComparison.Ordinal) || registry.Any(char.IsWhiteSpace))
        {
            await RegistryError.WriteAsync(context, 400, "UNSUPPORTED", $"ns='{registry}' is not a registry host").ConfigureAwait(false);
            return null;
        }
        if (AllowedRegistries != null && !registry.Equals(_defaultUpstream, StringComparison.OrdinalIgnoreCase) && !AllowedRegistries.Contains(registry.ToLowerInvariant()))
        {
            await RegistryError.WriteAsync(context, 403, "DENIED", $"this mirror does not fetch from {registry}: its mirror-registries setting allows " +
                $"{string.Join(", ", AllowedRegistries.Order(StringComparer.Ordinal))} (and the default upstream {_defaultUpstream})").ConfigureAwait(false);
            return null;
        }
        return registry;
    }

    /// <summary>Counters for /metrics: requests by kind, 404s, other 4xx, blob bytes sent to clients, streams cut after the headers.</summary>
    public (long Manifests, long Blobs, long NotFound, long ClientErrors, long BytesServed, long Cut) Counters => _counters.Snapshot();

    public async Task HandleAsync(HttpContext context)
    {
        using var observed = MirrorObservation.Start(context);
        try
        {
            await HandleCoreAsync(context).ConfigureAwait(false);
        }
        finally
        {
            _counters.Answered(context.Response.StatusCode);
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
            await RegistryError.WriteAsync(context, 405, "UNSUPPORTED", $"this mirror serves pulls only (GET and HEAD), not {request.Method}").ConfigureAwait(false);
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
            await RegistryError.WriteAsync(context, 404, "UNSUPPORTED", "not an OCI distribution path (/v2/...)").ConfigureAwait(false);
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
            await RegistryError.WriteAsync(context, 404, "UNSUPPORTED", "this mirror serves /v2/<name>/manifests/<reference> and /v2/<name>/blobs/<digest> only").ConfigureAwait(false);
            return;
        }
        string name = rest[..cut];
        string reference = rest[(cut + (isManifest ? "/manifests/".Length : "/blobs/".Length))..];
        if (!Oci.IsValidName(name))
        {
            await RegistryError.WriteAsync(context, 400, "NAME_INVALID", $"'{name}' is not a valid repository name").ConfigureAwait(false);
            return;
        }
        bool byDigest = reference.Contains(':', StringComparison.Ordinal);
        if (byDigest && !Oci.IsSha256Digest(reference))
        {
            bool wellFormed = Oci.LooksLikeDigest(reference);
            await RegistryError.WriteAsync(context, 400, "DIGEST_INVALID", wellFormed
                ? $"'{reference}': only sha256 digests are supported"
                : $"'{reference}' is not a digest (sha256: and 64 lowercase hex digits)").ConfigureAwait(false);
            return;
        }
        if (!isManifest && !byDigest)
        {
            await RegistryError.WriteAsync(context, 400, "DIGEST_INVALID", $"'{reference}' is not a digest: blobs are fetched by digest").ConfigureAwait(false);
            return;
        }
        if (isManifest && !byDigest && !Oci.IsValidTag(reference))
        {
            await RegistryError.WriteAsync(context, 400, "TAG_INVALID", $"'{reference}' is not a valid tag").ConfigureAwait(false);
            return;
        }
        if (await RegistryOrRefuseAsync(context).ConfigureAwait(false) is not { } registry) return;
        var upstream = _registries.Client(registry);
        _counters.Request(isManifest);
        MirrorObservation.Of(context)?.Requested(isManifest, registry, _known ??= MirrorObservation.Known(_defaultUpstream, AllowedRegistries, _registries.Configured));
        try
        {
            if (isManifest && !byDigest) await _manifests.ByTagAsync(context, upstream, name, reference, head).ConfigureAwait(false);
            else await ByDigestAsync(context, upstream, name, reference, isManifest, head).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // the client went away
        }
    }

    /// <summary>The tag list of a repository, from the upstream.</summary>
    private async Task TagListAsync(HttpContext context, string name, bool head)
    {
        if (!Oci.IsValidName(name))
        {
            await RegistryError.WriteAsync(context, 400, "NAME_INVALID", $"'{name}' is not a valid repository name").ConfigureAwait(false);
            return;
        }
        if (await RegistryOrRefuseAsync(context).ConfigureAwait(false) is not { } registry) return;
        await ManifestEndpoint.TagListAsync(context, _registries.Client(registry), name, head).ConfigureAwait(false);
    }

    /// <summary>A manifest or blob by digest: only when the upstream lets this node read it (see <see cref="UpstreamPermission"/>).</summary>
    private async Task ByDigestAsync(HttpContext context, RegistryClient upstream, string name, string digest, bool manifest, bool head)
    {
        if (await _permission.RefusalAsync(upstream, name, digest, manifest, context.RequestAborted).ConfigureAwait(false) is { } refusal)
        {
            await RegistryError.WriteAsync(context, 404, manifest ? "MANIFEST_UNKNOWN" : "BLOB_UNKNOWN", refusal).ConfigureAwait(false);
            return;
        }
        if (manifest) await _manifests.ByDigestAsync(context, upstream, name, digest, head).ConfigureAwait(false);
        else await _blobs.ServeAsync(context, upstream, name, digest, head).ConfigureAwait(false);
    }
}
