using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Swarm.Core.Sources;

/// <summary>Credentials for one registry: a user name and password (or token as password), sent only to that registry and its token realm.</summary>
public sealed record RegistryCredentials(string Username, string Password);

/// <summary>How a registry request failed.</summary>
public enum RegistryFailure
{
    /// <summary>The registry answered 404: no such manifest or blob.</summary>
    NotFound,
    /// <summary>The registry refused these credentials (401/403 after authenticating).</summary>
    Denied,
    /// <summary>The registry could not be reached, timed out or answered 5xx.</summary>
    Unavailable,
    /// <summary>The registry answered something that breaks the protocol (a digest that does not match, a huge manifest).</summary>
    Invalid,
}

public sealed class RegistryException : Exception
{
    public RegistryException(RegistryFailure failure, string message, Exception? inner = null) : base(message, inner) => Failure = failure;
    public RegistryException() : base() { }
    public RegistryException(string message) : base(message) { }
    public RegistryException(string message, Exception inner) : base(message, inner) { }
    public RegistryFailure Failure { get; }
}

/// <summary>A manifest as a registry served it: its digest (checked against the bytes), media type and body.</summary>
public sealed record RegistryManifest(string Digest, string MediaType, byte[] Body);

/// <summary>
/// The pull side of one OCI distribution registry: manifests (by tag or digest), blob HEADs and URLs, and the token
/// dance — an anonymous request answered 401 <c>WWW-Authenticate: Bearer realm=…,service=…,scope=…</c> gets a token from
/// the realm (with Basic credentials when configured) and is sent again; <c>Basic</c> challenges get the credentials
/// directly. Tokens are cached per scope until they expire. Loopback registries are spoken to over plain HTTP (like
/// Docker's localhost rule), others over HTTPS unless <c>plainHttp</c> says otherwise.
/// </summary>
public sealed class RegistryClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly RegistryCredentials? _credentials;
    private readonly ConcurrentDictionary<string, (string Header, DateTime Expires)> _tokens = new();
    private volatile string? _bearerRealm, _bearerService;
    private volatile bool _basic;

    public RegistryClient(string registry, RegistryCredentials? credentials = null, bool? plainHttp = null, TimeSpan? timeout = null, HttpMessageHandler? handler = null)
    {
        Registry = registry;
        Host = Oci.CanonicalRegistry(registry);
        bool http = plainHttp ?? IsLoopback(Host);
        BaseUri = new Uri((http ? "http://" : "https://") + Host);
        _credentials = credentials;
        _http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(3),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        })
        { Timeout = timeout ?? TimeSpan.FromSeconds(15) };
        OriginClient.AddUserAgent(_http);
    }

    /// <summary>The registry as named (e.g. docker.io).</summary>
    public string Registry { get; }
    /// <summary>The host spoken to (e.g. registry-1.docker.io).</summary>
    public string Host { get; }
    public Uri BaseUri { get; }
    public bool HasCredentials => _credentials != null;

    private static bool IsLoopback(string host)
    {
        string h = host;
        if (h.StartsWith('[')) h = h[1..h.IndexOf(']', StringComparison.Ordinal)];
        else if (h.Count(c => c == ':') == 1) h = h[..h.IndexOf(':', StringComparison.Ordinal)];
        return h == "localhost" || (IPAddress.TryParse(h, out var ip) && IPAddress.IsLoopback(ip));
    }

    public Uri BlobUri(string repository, string digest) => new(BaseUri, $"/v2/{repository}/blobs/{digest}");
    public Uri ManifestUri(string repository, string reference) => new(BaseUri, $"/v2/{repository}/manifests/{reference}");

    /// <summary>
    /// The Authorization header value a pull of <paramref name="repository"/> needs now (a cached or new bearer token,
    /// or Basic credentials), or null when the registry asked for none so far.
    /// </summary>
    public async Task<string?> AuthorizationAsync(string repository, CancellationToken cancellationToken)
    {
        if (_basic && _credentials != null) return BasicHeader(_credentials);
        if (_bearerRealm == null) return null;
        return await TokenAsync(ScopeFor(repository), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends a request (GET or HEAD), authenticating once when challenged. The caller disposes the response.</summary>
    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri uri, string repository, IEnumerable<string>? accept, CancellationToken cancellationToken)
    {
        var auth = await AuthorizationAsync(repository, cancellationToken).ConfigureAwait(false);
        var response = await SendOnceAsync(method, uri, accept, auth, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Unauthorized) return response;
        var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
        response.Dispose();
        if (challenge == null) throw new RegistryException(RegistryFailure.Denied, $"{Registry} answered 401 without a WWW-Authenticate challenge for {uri.AbsolutePath}");
        if (challenge.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
        {
            if (_credentials == null) throw new RegistryException(RegistryFailure.Denied, $"{Registry} wants a user name and password for {repository}; add them to the registry configuration");
            _basic = true;
            auth = BasicHeader(_credentials);
        }
        else if (challenge.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            var p = ParseChallenge(challenge.Parameter ?? "");
            if (!p.TryGetValue("realm", out var realm) || !Uri.TryCreate(realm, UriKind.Absolute, out var realmUri)
                || (realmUri.Scheme != Uri.UriSchemeHttp && realmUri.Scheme != Uri.UriSchemeHttps))
                throw new RegistryException(RegistryFailure.Invalid, $"{Registry} sent a Bearer challenge without a usable realm: {challenge.Parameter}");
            _bearerRealm = realm;
            _bearerService = p.GetValueOrDefault("service");
            string scope = p.GetValueOrDefault("scope") ?? ScopeFor(repository);
            _tokens.TryRemove(scope, out _);
            auth = await TokenAsync(scope, cancellationToken).ConfigureAwait(false);
        }
        else throw new RegistryException(RegistryFailure.Denied, $"{Registry} asks for '{challenge.Scheme}' authentication, which swarm does not speak (Basic and Bearer only)");
        response = await SendOnceAsync(method, uri, accept, auth, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            response.Dispose();
            throw new RegistryException(RegistryFailure.Denied, $"{Registry} refused access to {repository}{(_credentials == null ? " (anonymous; configure credentials for it)" : " with the configured credentials")}");
        }
        return response;
    }

    private async Task<HttpResponseMessage> SendOnceAsync(HttpMethod method, Uri uri, IEnumerable<string>? accept, string? authorization, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, uri);
        if (accept != null) foreach (var a in accept) request.Headers.Accept.ParseAdd(a);
        if (authorization != null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
        try
        {
            var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            if ((int)response.StatusCode >= 500)
            {
                int code = (int)response.StatusCode;
                response.Dispose();
                throw new RegistryException(RegistryFailure.Unavailable, $"{Registry} answered {code} for {uri.AbsolutePath}");
            }
            return response;
        }
        catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new RegistryException(RegistryFailure.Unavailable, $"registry {Registry} ({BaseUri}) did not answer: {e.Message}", e);
        }
    }

    private static string ScopeFor(string repository) => $"repository:{repository}:pull";

    private static string BasicHeader(RegistryCredentials c) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{c.Username}:{c.Password}"));

    private async Task<string> TokenAsync(string scope, CancellationToken cancellationToken)
    {
        if (_tokens.TryGetValue(scope, out var cached) && cached.Expires > DateTime.UtcNow) return cached.Header;
        var query = new StringBuilder("?scope=").Append(Uri.EscapeDataString(scope));
        if (_bearerService is { } service) query.Append("&service=").Append(Uri.EscapeDataString(service));
        var uri = new Uri(_bearerRealm + (_bearerRealm!.Contains('?', StringComparison.Ordinal) ? "&" + query.ToString(1, query.Length - 1) : query.ToString()));
        using var request = new HttpRequestMessage(HttpMethod.Get, uri);
        if (_credentials != null) request.Headers.TryAddWithoutValidation("Authorization", BasicHeader(_credentials));
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new RegistryException(RegistryFailure.Unavailable, $"the token service of {Registry} ({uri.GetLeftPart(UriPartial.Authority)}) did not answer: {e.Message}", e);
        }
        using (response)
        {
            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                throw new RegistryException(RegistryFailure.Denied, $"the token service of {Registry} refused {(_credentials == null ? "an anonymous token" : "the configured credentials")} for {scope}");
            if (!response.IsSuccessStatusCode)
                throw new RegistryException((int)response.StatusCode >= 500 ? RegistryFailure.Unavailable : RegistryFailure.Invalid,
                    $"the token service of {Registry} answered {(int)response.StatusCode} for {scope}");
            string? token;
            int expiresIn = 60;
            try
            {
                using var doc = JsonDocument.Parse(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false));
                var root = doc.RootElement;
                token = root.TryGetProperty("token", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()
                    : root.TryGetProperty("access_token", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString() : null;
                if (root.TryGetProperty("expires_in", out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int s) && s > 0) expiresIn = s;
            }
            catch (JsonException e)
            {
                throw new RegistryException(RegistryFailure.Invalid, $"the token service of {Registry} did not answer JSON: {e.Message}", e);
            }
            catch (InvalidOperationException e)
            {
                // JSON of another shape than a token answer (not an object; a token that is not valid UTF-8): found by fuzzing.
                throw new RegistryException(RegistryFailure.Invalid, $"the token service of {Registry} answered JSON that is not a token answer", e);
            }
            if (string.IsNullOrEmpty(token)) throw new RegistryException(RegistryFailure.Invalid, $"the token service of {Registry} answered without a token");
            string header = "Bearer " + token;
            _tokens[scope] = (header, DateTime.UtcNow + TimeSpan.FromSeconds(Math.Max(10, expiresIn - 10)));
            return header;
        }
    }

    /// <summary>Parses <c>key="value",key=value</c> challenge parameters.</summary>
    internal static Dictionary<string, string> ParseChallenge(string parameters)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        int i = 0;
        while (i < parameters.Length)
        {
            while (i < parameters.Length && (parameters[i] == ',' || char.IsWhiteSpace(parameters[i]))) i++;
            int eq = parameters.IndexOf('=', i);
            if (eq < 0) break;
            string key = parameters[i..eq].Trim();
            i = eq + 1;
            var value = new StringBuilder();
            if (i < parameters.Length && parameters[i] == '"')
            {
                i++;
                while (i < parameters.Length && parameters[i] != '"')
                {
                    if (parameters[i] == '\\' && i + 1 < parameters.Length) i++;
                    value.Append(parameters[i++]);
                }
                i++;
            }
            else
            {
                while (i < parameters.Length && parameters[i] != ',') value.Append(parameters[i++]);
            }
            if (key.Length > 0) result[key] = value.ToString().Trim();
        }
        return result;
    }

    /// <summary>
    /// Fetches a manifest by tag or digest. The body's digest is computed here: it must equal the reference when that is
    /// a digest, and the registry's Docker-Content-Digest when it sends one.
    /// </summary>
    public async Task<RegistryManifest> GetManifestAsync(string repository, string reference, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Get, ManifestUri(repository, reference), repository, Oci.ManifestTypes, cancellationToken).ConfigureAwait(false);
        Check(response, repository, reference, "manifest");
        long? length = response.Content.Headers.ContentLength;
        if (length > Oci.MaxManifestBytes) throw new RegistryException(RegistryFailure.Invalid, $"{Registry} sent a {length:N0}-byte manifest for {repository}:{reference}; manifests are at most 4 MiB");
        byte[] body;
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var buffer = new MemoryStream();
            var chunk = new byte[81920];
            int n;
            while ((n = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + n > Oci.MaxManifestBytes) throw new RegistryException(RegistryFailure.Invalid, $"{Registry} sent a manifest over 4 MiB for {repository}:{reference}");
                buffer.Write(chunk, 0, n);
            }
            body = buffer.ToArray();
        }
        catch (Exception e) when (e is HttpRequestException or IOException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            throw new RegistryException(RegistryFailure.Unavailable, $"{Registry} broke off the manifest of {repository}:{reference}: {e.Message}", e);
        }
        string digest = Oci.Sha256Digest(body);
        if (reference.Contains(':', StringComparison.Ordinal) && reference != digest)
            throw new RegistryException(RegistryFailure.Invalid, $"{Registry} sent a manifest whose digest is {digest}, not the {reference} asked for");
        if (response.Headers.TryGetValues("Docker-Content-Digest", out var sent) && sent.FirstOrDefault() is { } claimed && claimed.StartsWith("sha256:", StringComparison.Ordinal) && claimed != digest)
            throw new RegistryException(RegistryFailure.Invalid, $"{Registry} says the manifest of {repository}:{reference} is {claimed}, but its body is {digest}");
        string mediaType = response.Content.Headers.ContentType?.MediaType is { } ct && ct != "application/json" && ct != "text/plain"
            ? ct : Oci.DetectManifestType(body);
        return new RegistryManifest(digest, mediaType, body);
    }

    /// <summary>The size of a blob (HEAD), or throws: NotFound, Denied or Unavailable.</summary>
    public async Task<long> HeadBlobAsync(string repository, string digest, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Head, BlobUri(repository, digest), repository, null, cancellationToken).ConfigureAwait(false);
        Check(response, repository, digest, "blob");
        return response.Content.Headers.ContentLength ?? throw new RegistryException(RegistryFailure.Invalid, $"{Registry} answered HEAD {digest} without a Content-Length");
    }

    /// <summary>Checks (HEAD) that a manifest exists and this client may read it; returns its digest and media type when the registry sends them.</summary>
    public async Task<(string? Digest, string? MediaType, long? Length)> HeadManifestAsync(string repository, string reference, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(HttpMethod.Head, ManifestUri(repository, reference), repository, Oci.ManifestTypes, cancellationToken).ConfigureAwait(false);
        Check(response, repository, reference, "manifest");
        string? digest = response.Headers.TryGetValues("Docker-Content-Digest", out var d) ? d.FirstOrDefault() : null;
        return (digest, response.Content.Headers.ContentType?.MediaType, response.Content.Headers.ContentLength);
    }

    private void Check(HttpResponseMessage response, string repository, string reference, string what)
    {
        if (response.IsSuccessStatusCode) return;
        var failure = response.StatusCode switch
        {
            HttpStatusCode.NotFound => RegistryFailure.NotFound,
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => RegistryFailure.Denied,
            HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout => RegistryFailure.Unavailable,
            _ => RegistryFailure.Invalid,
        };
        throw new RegistryException(failure, $"{Registry} answered {(int)response.StatusCode} for the {what} {repository}{(reference.Contains(':', StringComparison.Ordinal) ? "@" : ":")}{reference}");
    }

    public void Dispose() => _http.Dispose();
}
