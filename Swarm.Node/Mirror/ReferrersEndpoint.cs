using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Swarm.Core.Sources;

namespace Swarm.Node.Mirror;

/// <summary>
/// The referrers API (<c>GET /v2/NAME/referrers/DIGEST[?artifactType=…]</c>), passed through from the upstream with the
/// same credentials and token dance as manifests: the upstream's image index unchanged, as
/// <c>application/vnd.oci.image.index.v1+json</c>, with its <c>OCI-Filters-Applied</c> and <c>Link</c> headers. An
/// upstream without the API (404) gets the client a 404, so it falls back to the referrers tag (<c>sha256-HEX</c>), an
/// ordinary tag the mirror passes through. Only when the upstream cannot be reached does the node answer from its own
/// last answer for the same query, with an <c>Age</c> header; never from a peer.
/// </summary>
internal sealed partial class ReferrersEndpoint(OciContent oci, ILogger logger)
{
    public async Task ServeAsync(HttpContext context, RegistryClient upstream, string name, string subject, bool head)
    {
        var ct = context.RequestAborted;
        string query = ForwardedQuery(context.Request.Query);
        ReferrersIndex index;
        bool stale = false;
        try
        {
            var (answer, refusal) = await FetchAsync(upstream, name, subject, query, ct).ConfigureAwait(false);
            if (answer == null)
            {
                await RegistryError.WriteAsync(context, 404, refusal!.Value.Code, refusal.Value.Message).ConfigureAwait(false);
                return;
            }
            oci.CountFromOrigin(answer.Body.Length);
            oci.SaveReferrers(upstream.Registry, name, subject, query, answer);
            index = answer;
        }
        catch (RegistryException e) when (e.Failure == RegistryFailure.Unavailable)
        {
            var last = oci.LastReferrers(upstream.Registry, name, subject, query);
            if (last == null)
            {
                await RegistryError.WriteAsync(context, 404, "MANIFEST_UNKNOWN", $"{e.Message}; this node has not listed the referrers of {name}@{subject} before").ConfigureAwait(false);
                return;
            }
            logger.LogInformation("mirror: {Registry} unreachable; the referrers of {Name}@{Subject} are this node's own answer from {FetchedAt:u}", upstream.Registry, name, subject, last.FetchedAt);
            index = last;
            stale = true;
        }
        catch (RegistryException e)
        {
            await RegistryError.WriteAsync(context, 404, e.Failure == RegistryFailure.Denied ? "DENIED" : "MANIFEST_UNKNOWN", e.Message).ConfigureAwait(false);
            return;
        }
        var response = context.Response;
        response.ContentType = Oci.ImageIndex;
        if (index.FiltersApplied != null) response.Headers["OCI-Filters-Applied"] = index.FiltersApplied;
        if (index.Link != null) response.Headers["Link"] = index.Link;
        // How old the list is (RFC 9111): the client can tell that it is not the upstream's answer of now.
        if (stale) response.Headers.Age = Math.Max(0, (long)(DateTime.UtcNow - index.FetchedAt).TotalSeconds).ToString(CultureInfo.InvariantCulture);
        response.ContentLength = index.Body.Length;
        if (!head) await response.Body.WriteAsync(index.Body, ct).ConfigureAwait(false);
    }

    /// <summary>The upstream's referrers index, or why there is none (the code and message of the 404 to answer).</summary>
    private static async Task<(ReferrersIndex? Index, (string Code, string Message)? Refusal)> FetchAsync(
        RegistryClient upstream, string name, string subject, string query, CancellationToken ct)
    {
        var uri = new Uri(upstream.BaseUri, $"/v2/{name}/referrers/{subject}{query}");
        using var answer = await upstream.SendAsync(HttpMethod.Get, uri, name, [Oci.ImageIndex], ct).ConfigureAwait(false);
        string what = $"the referrers of {name}@{subject}";
        switch (answer.StatusCode)
        {
            case HttpStatusCode.OK:
                byte[] body = await UpstreamBody.ReadAsync(answer, upstream, Oci.MaxManifestBytes, what, ct).ConfigureAwait(false);
                if (!IsImageIndex(body)) throw new RegistryException(RegistryFailure.Invalid, $"{upstream.Registry} answered {what} with something that is not an OCI image index");
                return (new ReferrersIndex(body, Header(answer, "OCI-Filters-Applied", FilterListRegex()), Header(answer, "Link", PrintableRegex()), DateTime.UtcNow), null);
            case HttpStatusCode.NotFound:
                // A registry with the API never answers 404 for a repository it has (distribution spec, "Listing Referrers").
                if (await ErrorCodeAsync(answer, ct).ConfigureAwait(false) == "NAME_UNKNOWN")
                    return (null, ("NAME_UNKNOWN", $"{upstream.Registry} has no repository {name}"));
                return (null, ("UNSUPPORTED", $"{upstream.Registry} does not serve the referrers API (it answered 404 for {what}); " +
                    $"clients fall back to the referrers tag {name}:{TagSchema(subject)}, which this mirror passes through"));
            case HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden:
                throw new RegistryException(RegistryFailure.Denied, $"{upstream.Registry} refused {what} ({(int)answer.StatusCode})");
            case HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout:
                throw new RegistryException(RegistryFailure.Unavailable, $"{upstream.Registry} answered {(int)answer.StatusCode} for {what}");
            default:
                throw new RegistryException(RegistryFailure.Invalid, $"{upstream.Registry} answered {(int)answer.StatusCode} for {what}");
        }
    }

    /// <summary>The client's query without <c>ns</c> (which names the upstream), for the upstream: <c>artifactType</c> and any paging it uses.</summary>
    private static string ForwardedQuery(IQueryCollection query)
    {
        var text = new StringBuilder();
        foreach (var (key, values) in query.Where(q => !q.Key.Equals("ns", StringComparison.OrdinalIgnoreCase)).OrderBy(q => q.Key, StringComparer.Ordinal))
            foreach (var value in values)
                text.Append(text.Length == 0 ? '?' : '&').Append(Uri.EscapeDataString(key)).Append('=').Append(Uri.EscapeDataString(value ?? ""));
        return text.ToString();
    }

    /// <summary>The referrers tag of a digest (distribution spec, "Referrers Tag Schema").</summary>
    private static string TagSchema(string digest)
    {
        int colon = digest.IndexOf(':', StringComparison.Ordinal);
        string algorithm = digest[..colon], encoded = digest[(colon + 1)..];
        string tag = algorithm[..Math.Min(32, algorithm.Length)] + "-" + encoded[..Math.Min(64, encoded.Length)];
        return NotTagCharRegex().Replace(tag, "-");
    }

    /// <summary>An image index as the spec describes the referrers answer: a JSON object, schemaVersion 2, an array of descriptors, the index media type if any.</summary>
    private static bool IsImageIndex(byte[] body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            return root.ValueKind == JsonValueKind.Object
                && root.TryGetProperty("schemaVersion", out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int version) && version == 2
                && root.TryGetProperty("manifests", out var m) && m.ValueKind == JsonValueKind.Array && m.EnumerateArray().All(d => d.ValueKind == JsonValueKind.Object)
                && (!root.TryGetProperty("mediaType", out var t) || (t.ValueKind == JsonValueKind.String && t.GetString() == Oci.ImageIndex));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException)
        {
            return false;
        }
    }

    /// <summary>The code of an error answer's first error, when its body has the spec's shape.</summary>
    private static async Task<string?> ErrorCodeAsync(HttpResponseMessage answer, CancellationToken ct)
    {
        try
        {
            var body = new byte[64 * 1024];
            int n = 0, read;
            await using var stream = await answer.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            while (n < body.Length && (read = await stream.ReadAsync(body.AsMemory(n), ct).ConfigureAwait(false)) > 0) n += read;
            using var doc = JsonDocument.Parse(body.AsMemory(0, n));
            return doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Array
                && errors.EnumerateArray().FirstOrDefault() is { ValueKind: JsonValueKind.Object } first && first.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String
                ? code.GetString() : null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            return null;
        }
    }

    /// <summary>A header of the upstream's answer, kept only when it has the expected form (it is sent on to the client).</summary>
    private static string? Header(HttpResponseMessage answer, string name, Regex form) =>
        answer.Headers.TryGetValues(name, out var values) && string.Join(", ", values) is { Length: > 0 and <= 4096 } value && form.IsMatch(value) ? value : null;

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9]*( *, *[A-Za-z][A-Za-z0-9]*)*$", RegexOptions.CultureInvariant)]
    private static partial Regex FilterListRegex();

    [GeneratedRegex(@"^[\x20-\x7e]+$", RegexOptions.CultureInvariant)]
    private static partial Regex PrintableRegex();

    [GeneratedRegex(@"[^A-Za-z0-9_.-]", RegexOptions.CultureInvariant)]
    private static partial Regex NotTagCharRegex();
}
