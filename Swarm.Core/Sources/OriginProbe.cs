using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;

namespace Swarm.Core.Sources;

/// <summary>What one small request to the origin told about a URL.</summary>
public enum OriginProbeOutcome
{
    /// <summary>The origin answered with the current version's validators.</summary>
    Current,
    /// <summary>The origin answered, but refused or does not have the URL (4xx): no pointer can stand for it.</summary>
    Refused,
    /// <summary>The origin could not be reached (connection refused, reset, timeout) or failed (5xx).</summary>
    Unreachable,
}

/// <summary>The result of <see cref="OriginProbe.RunAsync"/>.</summary>
/// <param name="Outcome">What happened.</param>
/// <param name="Validators">The current version's validators (<see cref="OriginProbeOutcome.Current"/> only).</param>
/// <param name="Detail">What failed, in words (for messages), e.g. "connection refused" or "403 Forbidden".</param>
public sealed record OriginProbeResult(OriginProbeOutcome Outcome, OriginValidators? Validators, string Detail);

/// <summary>
/// Asks an origin which version of a URL it serves now, with one small request: HEAD, or, where HEAD is refused
/// (405, 501, or another 4xx that a GET might not get), a GET of the first byte (<c>Range: bytes=0-0</c>) whose body is not
/// read beyond that byte. Sent with the request's own headers (credentials), no retries beyond one, and a short timeout:
/// a node that cannot ask the origin quickly treats it as unreachable.
/// </summary>
public static class OriginProbe
{
    public static async Task<OriginProbeResult> RunAsync(Uri url, IReadOnlyList<KeyValuePair<string, string>> headers, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var handler = new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None, ConnectTimeout = timeout };
        using var http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        foreach (var (name, value) in headers) http.DefaultRequestHeaders.TryAddWithoutValidation(name, value);
        OriginClient.AddUserAgent(http);
        string origin = url.GetLeftPart(UriPartial.Authority);
        for (int attempt = 0; ; attempt++)
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            try
            {
                using (var head = await SendAsync(http, HttpMethod.Head, url, null, deadline.Token).ConfigureAwait(false))
                {
                    if (head.IsSuccessStatusCode && head.Content.Headers.ContentLength is { } length)
                        return new OriginProbeResult(OriginProbeOutcome.Current, OriginValidators.FromResponse(head, length), "");
                    if ((int)head.StatusCode >= 500 && attempt == 0) continue;
                    if ((int)head.StatusCode >= 500) return new OriginProbeResult(OriginProbeOutcome.Unreachable, null, Status(head));
                }
                // HEAD refused, or answered without a length: the first byte by GET.
                using var get = await SendAsync(http, HttpMethod.Get, url, new RangeHeaderValue(0, 0), deadline.Token).ConfigureAwait(false);
                int code = (int)get.StatusCode;
                if (code == 206 && get.Content.Headers.ContentRange is { Length: { } total })
                    return new OriginProbeResult(OriginProbeOutcome.Current, OriginValidators.FromResponse(get, total), "");
                if (code == 200 && get.Content.Headers.ContentLength is { } whole)
                    return new OriginProbeResult(OriginProbeOutcome.Current, OriginValidators.FromResponse(get, whole), "");
                if (code >= 500 && attempt == 0) continue;
                if (code >= 500) return new OriginProbeResult(OriginProbeOutcome.Unreachable, null, Status(get));
                if (code is >= 200 and < 300)
                    return new OriginProbeResult(OriginProbeOutcome.Refused, null, $"{origin} answered {Status(get)} without a length");
                return new OriginProbeResult(OriginProbeOutcome.Refused, null, $"{origin} answered {Status(get)}");
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                if (attempt == 0) continue;
                return new OriginProbeResult(OriginProbeOutcome.Unreachable, null, $"{origin} did not answer within {timeout.TotalSeconds:0.#} s");
            }
            catch (HttpRequestException e)
            {
                if (attempt == 0 && e.InnerException is not SocketException { SocketErrorCode: SocketError.ConnectionRefused }) continue;
                return new OriginProbeResult(OriginProbeOutcome.Unreachable, null, $"{origin} could not be reached ({Describe(e)})");
            }
        }
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, HttpMethod method, Uri url, RangeHeaderValue? range, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(method, url);
        request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
        if (range != null) request.Headers.Range = range;
        return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
    }

    private static string Status(HttpResponseMessage r) => $"{(int)r.StatusCode} {r.ReasonPhrase}";

    private static string Describe(HttpRequestException e) => e.InnerException switch
    {
        SocketException { SocketErrorCode: SocketError.ConnectionRefused } => "connection refused",
        SocketException s => s.SocketErrorCode.ToString(),
        IOException => "the connection broke",
        _ => e.HttpRequestError.ToString(),
    };
}
