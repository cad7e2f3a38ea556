using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Mirror;

/// <summary>
/// A registry that implements the referrers API (distribution spec 1.1), as the test's own Kestrel on 127.0.0.1
/// (docker-registry 2.8 does not implement it): a Bearer token dance on every /v2/ request but <c>/v2/</c> itself, a
/// subject manifest, a signature and an SBOM that refer to it, their referrers index (filtered by
/// <c>artifactType</c> with <c>OCI-Filters-Applied</c>), an empty index for any other subject, NAME_UNKNOWN for other
/// repositories. Private (Basic credentials given): the token service hands out the token for those credentials only.
/// Records every request.
/// </summary>
internal sealed class ReferrersUpstream : IAsyncDisposable
{
    public const string Repository = "demo/signed";
    public const string Token = "referrers-token";
    public const string SignatureType = "application/vnd.example.signature.v1";
    public const string SbomType = "application/vnd.example.sbom.v1";
    private const string ManifestType = "application/vnd.oci.image.manifest.v1+json";
    private const string IndexType = "application/vnd.oci.image.index.v1+json";
    private const string Empty = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    private readonly WebApplication _app;
    private readonly string? _basic;
    private readonly ConcurrentQueue<(string Method, string PathAndQuery, string Authorization)> _seen = new();
    private bool _stopped;

    public byte[] Subject { get; }
    public byte[] Signature { get; }
    public byte[] Sbom { get; }
    /// <summary>The referrers index of <see cref="Subject"/>, unfiltered and filtered to signatures, byte for byte as served.</summary>
    public byte[] AllReferrers { get; }
    public byte[] SignatureReferrers { get; }
    public string SubjectDigest => OciImage.Digest(Subject);
    public string SignatureDigest => OciImage.Digest(Signature);
    public int Port { get; private set; }
    public string Host => $"127.0.0.1:{Port}";
    public IReadOnlyList<(string Method, string PathAndQuery, string Authorization)> Seen => _seen.ToArray();

    private ReferrersUpstream(WebApplication app, string? basic)
    {
        _app = app;
        _basic = basic;
        Subject = Encoding.UTF8.GetBytes($"{{\"schemaVersion\":2,\"mediaType\":\"{ManifestType}\",\"config\":{Descriptor("application/vnd.oci.image.config.v1+json", "sha256:" + new string('c', 64), 1234)},\"layers\":[]}}");
        Signature = Artifact(SignatureType, "signature");
        Sbom = Artifact(SbomType, "sbom");
        string sig = Entry(Signature, SignatureType, "signed-by", "test-key");
        string sbom = Entry(Sbom, SbomType, "format", "spdx");
        AllReferrers = Encoding.UTF8.GetBytes($"{{\"schemaVersion\":2,\"mediaType\":\"{IndexType}\",\"manifests\":[{sig},{sbom}]}}");
        SignatureReferrers = Encoding.UTF8.GetBytes($"{{\"schemaVersion\":2,\"mediaType\":\"{IndexType}\",\"manifests\":[{sig}]}}");
    }

    private static string Descriptor(string mediaType, string digest, long size) => $"{{\"mediaType\":\"{mediaType}\",\"digest\":\"{digest}\",\"size\":{size}}}";

    private byte[] Artifact(string artifactType, string what) => Encoding.UTF8.GetBytes(
        $"{{\"schemaVersion\":2,\"mediaType\":\"{ManifestType}\",\"artifactType\":\"{artifactType}\",\"config\":{Descriptor("application/vnd.oci.empty.v1+json", Empty, 2)}," +
        $"\"layers\":[{Descriptor("application/octet-stream", OciImage.Digest(Encoding.UTF8.GetBytes(what)), what.Length)}],\"subject\":{Descriptor(ManifestType, SubjectDigest, Subject.Length)}}}");

    private static string Entry(byte[] manifest, string artifactType, string key, string value) =>
        $"{{\"mediaType\":\"{ManifestType}\",\"digest\":\"{OciImage.Digest(manifest)}\",\"size\":{manifest.Length},\"artifactType\":\"{artifactType}\",\"annotations\":{{\"org.example.{key}\":\"{value}\"}}}}";

    /// <summary>Starts the registry; with <paramref name="basic"/> (an Authorization header value) it is private.</summary>
    public static async Task<ReferrersUpstream> StartAsync(string? basic = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var upstream = new ReferrersUpstream(app, basic);
        app.Run(upstream.HandleAsync);
        await app.StartAsync(TestContext.Current.CancellationToken);
        upstream.Port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single()).Port;
        return upstream;
    }

    private async Task HandleAsync(HttpContext context)
    {
        var (request, response) = (context.Request, context.Response);
        string path = request.Path.Value ?? "";
        _seen.Enqueue((request.Method, path + request.QueryString.Value, request.Headers.Authorization.ToString()));
        if (path == "/token")
        {
            if (_basic != null && request.Headers.Authorization.ToString() != _basic)
            {
                response.StatusCode = 401;
                return;
            }
            response.ContentType = "application/json";
            await response.WriteAsync($"{{\"token\":\"{Token}\",\"expires_in\":300}}");
            return;
        }
        if (path is "/v2" or "/v2/")
        {
            response.ContentType = "application/json";
            await response.WriteAsync("{}");
            return;
        }
        if (request.Headers.Authorization.ToString() != "Bearer " + Token)
        {
            response.StatusCode = 401;
            response.Headers.WWWAuthenticate = $"Bearer realm=\"http://{Host}/token\",service=\"referrers-test\",scope=\"repository:{Repository}:pull\"";
            return;
        }
        string prefix = $"/v2/{Repository}/";
        if (!path.StartsWith(prefix, StringComparison.Ordinal))
        {
            await ErrorAsync(response, "NAME_UNKNOWN");
            return;
        }
        string rest = path[prefix.Length..];
        if (rest.StartsWith("referrers/", StringComparison.Ordinal))
        {
            byte[] index;
            string? artifactType = request.Query["artifactType"];
            if (rest != "referrers/" + SubjectDigest) index = Encoding.UTF8.GetBytes($"{{\"schemaVersion\":2,\"mediaType\":\"{IndexType}\",\"manifests\":[]}}");
            else if (artifactType == SignatureType) index = SignatureReferrers;
            else index = AllReferrers;
            if (artifactType != null) response.Headers["OCI-Filters-Applied"] = "artifactType";
            await WriteAsync(context, IndexType, index);
            return;
        }
        foreach (var manifest in new[] { Subject, Signature, Sbom })
            if (rest == "manifests/" + OciImage.Digest(manifest))
            {
                response.Headers["Docker-Content-Digest"] = OciImage.Digest(manifest);
                await WriteAsync(context, ManifestType, manifest);
                return;
            }
        await ErrorAsync(response, "MANIFEST_UNKNOWN");
    }

    /// <summary>The body, or the one range a client asked for (<c>bytes=A-B</c>, <c>bytes=A-</c>).</summary>
    private static async Task WriteAsync(HttpContext context, string type, byte[] body)
    {
        var response = context.Response;
        response.ContentType = type;
        int from = 0, to = body.Length - 1;
        if (context.Request.Headers.Range.ToString() is { Length: > 6 } range && range.StartsWith("bytes=", StringComparison.Ordinal))
        {
            var parts = range[6..].Split('-');
            from = int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
            if (parts[1].Length > 0) to = Math.Min(to, int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
            response.StatusCode = 206;
            response.Headers.ContentRange = $"bytes {from}-{to}/{body.Length}";
        }
        response.ContentLength = to - from + 1;
        if (!HttpMethods.IsHead(context.Request.Method)) await response.Body.WriteAsync(body.AsMemory(from, to - from + 1));
    }

    private static async Task ErrorAsync(HttpResponse response, string code)
    {
        response.StatusCode = 404;
        response.ContentType = "application/json";
        await response.WriteAsync($"{{\"errors\":[{{\"code\":\"{code}\",\"message\":\"not here\"}}]}}");
    }

    /// <summary>Stops listening: from now on the registry is unreachable.</summary>
    public async Task StopAsync()
    {
        if (_stopped) return;
        _stopped = true;
        await _app.StopAsync(CancellationToken.None);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await _app.DisposeAsync();
    }
}
