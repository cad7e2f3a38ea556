using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Swarm.Core.Sources;

namespace Swarm.Node.Mirror;

/// <summary>
/// The pull side of the OCI distribution API for containerd, skopeo and docker on this host: <c>/v2/</c>, manifests by
/// tag (resolved at the upstream every time; this node's own last resolution only when the upstream is unreachable) and
/// by digest, blobs by digest (through the swarm, served as they stream in), HEAD, single byte ranges, the referrers API
/// (passed through from the upstream) and containerd's <c>?ns=REGISTRY</c>. Anything neither the swarm nor the upstream
/// can serve, or that cannot exist, gets a quick 404 so the client moves on to its next host. This type routes and checks
/// requests (<see cref="RegistryRoute"/>); <see cref="ManifestEndpoint"/>, <see cref="BlobEndpoint"/> and
/// <see cref="ReferrersEndpoint"/> answer them, after <see cref="UpstreamPermission"/> agreed for anything by digest.
/// </summary>
public sealed class RegistryMirror
{
    private readonly Registries _registries;
    private readonly string _defaultUpstream;
    private readonly MirrorCounters _counters = new();
    private readonly UpstreamPermission _permission;
    private readonly ManifestEndpoint _manifests;
    private readonly BlobEndpoint _blobs;
    private readonly ReferrersEndpoint _referrers;
    private IReadOnlySet<string>? _known; // registries that are metric labels of their own

    public RegistryMirror(LocalNode node, OciContent content, Registries registries, string defaultUpstream, ILogger logger)
    {
        _registries = registries;
        _defaultUpstream = defaultUpstream;
        _permission = new UpstreamPermission(content);
        _manifests = new ManifestEndpoint(content, logger);
        _blobs = new BlobEndpoint(node, content, _counters, logger);
        _referrers = new ReferrersEndpoint(content, logger);
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
        bool read = head || HttpMethods.IsGet(request.Method);
        string path = request.Path.Value ?? "";
        if (read && path is "/v2" or "/v2/")
        {
            response.ContentType = "application/json";
            if (!head) await response.WriteAsync("{}").ConfigureAwait(false);
            return;
        }
        var route = path.StartsWith("/v2/", StringComparison.Ordinal) ? RegistryRoute.Parse(path[4..]) : null;
        if (!read)
        {
            await RefuseWriteAsync(context, route).ConfigureAwait(false);
            return;
        }
        if (route == null)
        {
            await RegistryError.WriteAsync(context, 404, "UNSUPPORTED", "not an OCI distribution path (/v2/...)").ConfigureAwait(false);
            return;
        }
        switch (route.Endpoint)
        {
            case RegistryEndpoint.TagList:
                await TagListAsync(context, route, head).ConfigureAwait(false);
                return;
            case RegistryEndpoint.Referrers:
                await ReferrersAsync(context, route, head).ConfigureAwait(false);
                return;
            case RegistryEndpoint.None:
                await RegistryError.WriteAsync(context, 404, "UNSUPPORTED",
                    "this mirror serves /v2/<name>/manifests/<reference>, /v2/<name>/blobs/<digest>, /v2/<name>/referrers/<digest> and /v2/<name>/tags/list only").ConfigureAwait(false);
                return;
        }
        bool isManifest = route.Endpoint == RegistryEndpoint.Manifests;
        string unknown = isManifest ? "MANIFEST_UNKNOWN" : "BLOB_UNKNOWN";
        // The spec lists 404 as the only failure of GET/HEAD of manifests and blobs: what cannot exist is not found.
        if (!route.ValidName)
        {
            await RegistryError.WriteAsync(context, 404, "NAME_UNKNOWN", route.InvalidName + ", so no registry has it").ConfigureAwait(false);
            return;
        }
        if (route.Unservable() is { } why)
        {
            await RegistryError.WriteAsync(context, 404, unknown, why).ConfigureAwait(false);
            return;
        }
        if (await RegistryOrRefuseAsync(context).ConfigureAwait(false) is not { } registry) return;
        var upstream = _registries.Client(registry);
        _counters.Request(isManifest);
        MirrorObservation.Of(context)?.Requested(isManifest, registry, _known ??= MirrorObservation.Known(_defaultUpstream, AllowedRegistries, _registries.Configured));
        try
        {
            if (isManifest && !route.ByDigest) await _manifests.ByTagAsync(context, upstream, route.Name, route.Reference, head).ConfigureAwait(false);
            else await ByDigestAsync(context, upstream, route.Name, route.Reference, isManifest, head).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // the client went away
        }
    }

    /// <summary>
    /// Pushes and deletes: 405, except that a malformed name or digest in the path gets the 400 the spec asks of a push
    /// with an invalid digest (<c>PUT …/manifests/sha256:totallywrong</c>), whatever the method.
    /// </summary>
    private static async Task RefuseWriteAsync(HttpContext context, RegistryRoute? route)
    {
        if (route is { Endpoint: RegistryEndpoint.Manifests or RegistryEndpoint.Blobs } && !route.IsUpload)
        {
            if (!route.ValidName)
            {
                await RegistryError.WriteAsync(context, 400, "NAME_INVALID", route.InvalidName).ConfigureAwait(false);
                return;
            }
            if (route.ByDigest && route.MalformedDigest() is { } malformed)
            {
                await RegistryError.WriteAsync(context, 400, "DIGEST_INVALID", malformed).ConfigureAwait(false);
                return;
            }
        }
        await RegistryError.WriteAsync(context, 405, "UNSUPPORTED", $"this mirror serves pulls only (GET and HEAD), not {context.Request.Method}").ConfigureAwait(false);
    }

    /// <summary>The referrers of a digest, from the upstream: 400 for a malformed name or digest, as the spec says.</summary>
    private async Task ReferrersAsync(HttpContext context, RegistryRoute route, bool head)
    {
        if (!route.ValidName)
        {
            await RegistryError.WriteAsync(context, 400, "NAME_INVALID", route.InvalidName).ConfigureAwait(false);
            return;
        }
        if (route.MalformedDigest() is { } malformed)
        {
            await RegistryError.WriteAsync(context, 400, "DIGEST_INVALID", malformed).ConfigureAwait(false);
            return;
        }
        if (await RegistryOrRefuseAsync(context).ConfigureAwait(false) is not { } registry) return;
        _counters.Request(manifest: true);
        try
        {
            await _referrers.ServeAsync(context, _registries.Client(registry), route.Name, route.Reference, head).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // the client went away
        }
    }

    /// <summary>The tag list of a repository, from the upstream.</summary>
    private async Task TagListAsync(HttpContext context, RegistryRoute route, bool head)
    {
        if (!route.ValidName)
        {
            await RegistryError.WriteAsync(context, 404, "NAME_UNKNOWN", route.InvalidName + ", so no registry has it").ConfigureAwait(false);
            return;
        }
        if (await RegistryOrRefuseAsync(context).ConfigureAwait(false) is not { } registry) return;
        await ManifestEndpoint.TagListAsync(context, _registries.Client(registry), route.Name, head).ConfigureAwait(false);
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
