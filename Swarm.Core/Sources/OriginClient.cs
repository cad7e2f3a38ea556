using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.Http.Resilience;
using Polly;

namespace Swarm.Core.Sources;

/// <summary>The origin failed in a way retrying will not fix (4xx), or kept failing after retries.</summary>
public sealed class OriginException : Exception
{
    public OriginException(string message) : base(message) { }
    public OriginException(string message, Exception inner) : base(message, inner) { }
    public OriginException() { }
    public bool Permanent { get; init; }
}

/// <summary>
/// Fetches from an origin over HTTP(S): request headers as given (<c>-H</c>), retries with exponential back-off on 5xx,
/// 408, 429, resets and timeouts (Microsoft.Extensions.Http.Resilience), a clear error on other 4xx.
/// </summary>
public sealed class OriginClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly IReadOnlyCollection<string>? _filters;

    /// <param name="headers">Request headers (<c>-H</c>); never printed.</param>
    /// <param name="filters">The <c>--filter</c>ed query parameters, whose values <see cref="Display"/> hides in every
    /// message; null when the caller does not know them: then messages show no query at all.</param>
    public OriginClient(IReadOnlyList<KeyValuePair<string, string>> headers, TimeSpan? attemptTimeout = null, int retries = 4, IReadOnlyCollection<string>? filters = null)
    {
        _filters = filters;
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddRetry(new HttpRetryStrategyOptions
            {
                MaxRetryAttempts = retries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(200),
            })
            .AddTimeout(attemptTimeout ?? TimeSpan.FromSeconds(30))
            .Build();
        var handler = new ResilienceHandler(pipeline) { InnerHandler = new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None } };
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        foreach (var (name, value) in headers) _http.DefaultRequestHeaders.TryAddWithoutValidation(name, value);
        AddUserAgent(_http);
    }

    /// <summary>Every request says it is Swarm's (<c>swarm/VERSION</c>), unless the caller's headers (<c>-H</c>) name another agent.</summary>
    internal static void AddUserAgent(HttpClient http)
    {
        if (!http.DefaultRequestHeaders.Contains("User-Agent"))
            http.DefaultRequestHeaders.TryAddWithoutValidation("User-Agent", Telemetry.UserAgent);
    }

    /// <summary>
    /// The URL as messages and logs may show it: filtered query values (signatures) and user information replaced by
    /// REDACTED (<see cref="TaskKey.Redact(Uri, IReadOnlyCollection{string})"/>); the whole query when no filters were given.
    /// </summary>
    public string Display(Uri url)
    {
        if (_filters != null) return TaskKey.Redact(url, _filters);
        string shown = TaskKey.Redact(url, []);
        int query = shown.IndexOf('?', StringComparison.Ordinal);
        return query < 0 ? shown : shown[..query] + "?" + SecretRedactor.Mask;
    }

    /// <summary>
    /// Starts a GET and returns the response with its body unread. The caller disposes it. With <paramref name="ifRange"/>,
    /// the range is asked for only if the origin still has that version (else it answers the whole body, 200).
    /// </summary>
    public async Task<HttpResponseMessage> GetAsync(Uri url, CancellationToken cancellationToken, RangeHeaderValue? range = null, RangeConditionHeaderValue? ifRange = null)
    {
        HttpResponseMessage response;
        try
        {
            var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (range != null) request.Headers.Range = range;
            if (range != null && ifRange != null) request.Headers.IfRange = ifRange;
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutException or Polly.Timeout.TimeoutRejectedException)
        {
            throw new OriginException($"origin {url.GetLeftPart(UriPartial.Authority)} did not answer: {e.Message}", e);
        }
        if (response.IsSuccessStatusCode) return response;
        int code = (int)response.StatusCode;
        response.Dispose();
        throw new OriginException(code is >= 400 and < 500
            ? $"origin answered {code} {response.ReasonPhrase} for {Display(url)}; check the URL and any -H credentials"
            : $"origin answered {code} {response.ReasonPhrase} for {Display(url)} after retries; try again later")
        { Permanent = code is >= 400 and < 500 };
    }

    public void Dispose() => _http.Dispose();
}
