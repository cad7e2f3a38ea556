using System.Net;
using System.Text;
using Swarm.Core.Sources;

namespace Swarm.Tests.Fuzz;

/// <summary>Answers a <see cref="RegistryClient"/>'s requests in memory, synchronously: the registry (and token service) the harnesses play.</summary>
public sealed class FakeRegistryHandler(Func<HttpRequestMessage, HttpResponseMessage> answer) : HttpMessageHandler
{
    private static readonly byte[] ManifestBody = Encoding.UTF8.GetBytes(
        "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
        + "\"digest\":\"sha256:" + new string('1', 64) + "\",\"size\":2},\"layers\":[]}");

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        Task.FromResult(answer(request));

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken) => answer(request);

    /// <summary>A request to the registry itself (not its token realm).</summary>
    public static bool IsRegistry(HttpRequestMessage request) =>
        request.RequestUri is { } uri && uri.Host == "registry.fuzz.invalid" && uri.AbsolutePath.StartsWith("/v2/", StringComparison.Ordinal);

    public static HttpResponseMessage Unauthorized(string challenge)
    {
        var response = new HttpResponseMessage(HttpStatusCode.Unauthorized) { Content = new ByteArrayContent([]) };
        response.Headers.TryAddWithoutValidation("WWW-Authenticate", challenge);
        return response;
    }

    public static HttpResponseMessage Manifest() => Bytes(ManifestBody, Oci.ImageManifest);

    public static HttpResponseMessage Json(string json) => Bytes(Encoding.UTF8.GetBytes(json), "application/json");

    public static HttpResponseMessage Bytes(byte[] body, string? contentType, bool withLength = true)
    {
        var content = new ByteArrayContent(body);
        if (contentType != null) content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        if (withLength) content.Headers.ContentLength = body.Length;
        else content.Headers.ContentLength = null;
        return new HttpResponseMessage(HttpStatusCode.OK) { Content = content };
    }
}
