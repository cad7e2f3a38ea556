using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node.Mirror;

/// <summary>
/// The mirror's tags and manifests: the tag list and manifests by tag come from the upstream (a tag is never taken from
/// a peer; this node's own last resolution stands in when the upstream is unreachable), manifests by digest from this
/// node's store, the swarm or the upstream.
/// </summary>
internal sealed class ManifestEndpoint(OciContent oci, ILogger logger)
{
    /// <summary>How long to wait for a manifest by digest (from the swarm or the upstream) before answering 404.</summary>
    public TimeSpan FirstByteTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The tag list is the upstream's (passed through, with its paging); tags never come from peers.</summary>
    public static async Task TagListAsync(HttpContext context, RegistryClient upstream, string name, bool head)
    {
        var query = string.Join("&", context.Request.Query.Where(q => q.Key is "n" or "last").Select(q => $"{q.Key}={Uri.EscapeDataString(q.Value.ToString())}"));
        try
        {
            using var answer = await upstream.SendAsync(HttpMethod.Get, new Uri(upstream.BaseUri, $"/v2/{name}/tags/list{(query.Length > 0 ? "?" + query : "")}"), name,
                ["application/json"], context.RequestAborted).ConfigureAwait(false);
            if (!answer.IsSuccessStatusCode)
            {
                await RegistryError.WriteAsync(context, 404, "NAME_UNKNOWN", $"{upstream.Registry} answered {(int)answer.StatusCode} for the tags of {name}").ConfigureAwait(false);
                return;
            }
            byte[] body = await UpstreamBody.ReadAsync(answer, upstream, Oci.MaxManifestBytes * 4, $"the tag list of {name}", context.RequestAborted).ConfigureAwait(false);
            context.Response.ContentType = "application/json";
            if (answer.Headers.TryGetValues("Link", out var link)) context.Response.Headers["Link"] = link.ToArray();
            context.Response.ContentLength = body.Length;
            if (!head) await context.Response.Body.WriteAsync(body, context.RequestAborted).ConfigureAwait(false);
        }
        catch (RegistryException e)
        {
            await RegistryError.WriteAsync(context, 404, "NAME_UNKNOWN", $"the tags of {name} come only from {upstream.Registry}: {e.Message}").ConfigureAwait(false);
        }
    }

    /// <summary>A manifest by tag: always resolved at the upstream; this node's own last resolution when it cannot be reached.</summary>
    public async Task ByTagAsync(HttpContext context, RegistryClient upstream, string name, string tag, bool head)
    {
        RegistryManifest manifest;
        try
        {
            manifest = await upstream.GetManifestAsync(name, tag, context.RequestAborted).ConfigureAwait(false);
            MirrorObservation.Of(context)?.From(upstream: true);
            oci.CountFromOrigin(manifest.Body.Length);
            oci.SaveTag(upstream.Registry, name, tag, manifest);
            _ = PublishInBackground(manifest, upstream.HasCredentials);
        }
        catch (RegistryException e) when (e.Failure == RegistryFailure.Unavailable)
        {
            var last = oci.LastResolution(upstream.Registry, name, tag);
            if (last == null)
            {
                await RegistryError.WriteAsync(context, 404, "MANIFEST_UNKNOWN", $"{e.Message}; this node has not resolved {name}:{tag} before").ConfigureAwait(false);
                return;
            }
            logger.LogInformation("mirror: {Registry} unreachable; {Name}:{Tag} is {Digest} as this node last resolved it", upstream.Registry, name, tag, last.Digest);
            manifest = last;
        }
        catch (RegistryException e)
        {
            await RegistryError.WriteAsync(context, 404, e.Failure == RegistryFailure.Denied ? "DENIED" : "MANIFEST_UNKNOWN", e.Message).ConfigureAwait(false);
            return;
        }
        await WriteAsync(context, manifest, head).ConfigureAwait(false);
    }

    private async Task PublishInBackground(RegistryManifest manifest, bool withCredentials)
    {
        try
        {
            await oci.PublishManifestAsync(manifest, withCredentials, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            logger.LogWarning("mirror: could not put manifest {Digest} into the swarm: {Error}", manifest.Digest, e.Message);
        }
    }

    /// <summary>A manifest by digest (the caller has checked that this node may serve it): the local copy, else fetched.</summary>
    public async Task ByDigestAsync(HttpContext context, RegistryClient upstream, string name, string digest, bool head)
    {
        var ct = context.RequestAborted;
        const string Unknown = "MANIFEST_UNKNOWN";
        var local = oci.Local(digest);
        StoredContent content;
        try
        {
            var fetch = local == null ? oci.Fetch(digest, upstream, name, manifest: true) : null;
            MirrorObservation.Of(context)?.Via(fetch);
            content = local ?? await fetch!.Completion.WaitAsync(FirstByteTimeout, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            await RegistryError.WriteAsync(context, 404, Unknown, $"neither the swarm nor {upstream.Registry} could serve {name}@{digest}: {e.Message}").ConfigureAwait(false);
            return;
        }
        byte[] body;
        try
        {
            body = OciContent.ReadAll(content);
        }
        catch (PieceRottenException e)
        {
            logger.LogWarning("mirror: the stored copy of {Digest} failed its hash check ({Error}); answered 503, the next request fetches it again", digest, e.Message);
            context.Response.Headers.RetryAfter = "1";
            await RegistryError.WriteAsync(context, 503, Unknown, $"the node's stored copy of {digest} failed its hash check and was dropped; retry, and it is fetched again").ConfigureAwait(false);
            return;
        }
        await WriteAsync(context, new RegistryManifest(digest, Oci.DetectManifestType(body), body), head).ConfigureAwait(false);
    }

    private static async Task WriteAsync(HttpContext context, RegistryManifest manifest, bool head)
    {
        var response = context.Response;
        response.ContentType = manifest.MediaType;
        response.Headers["Docker-Content-Digest"] = manifest.Digest;
        response.Headers.ETag = $"\"{manifest.Digest}\"";
        response.ContentLength = manifest.Body.Length;
        if (!head) await response.Body.WriteAsync(manifest.Body, context.RequestAborted).ConfigureAwait(false);
    }
}
