using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
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

/// <summary>
/// The mirror's referrers API through a real <c>swarm node</c>: passed through unchanged from an upstream that implements
/// it (token dance, <c>artifactType</c> filter, empty index), the node's own last answer while that upstream is down;
/// with docker-registry (no referrers API) the spec's 404, and the fallback tag <c>sha256-HEX</c> resolving through the
/// mirror.
/// </summary>
[Collection(DhtNetworkCollection.Name)]
public sealed class MirrorReferrersTests(RegistryMirrorFixture lab) : IClassFixture<RegistryMirrorFixture>
{
    private const string IndexType = "application/vnd.oci.image.index.v1+json";
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(15);
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private async Task<HttpResponseMessage> GetAsync(string url, HttpMethod? method = null, string? accept = null)
    {
        using var request = new HttpRequestMessage(method ?? HttpMethod.Get, url);
        if (accept != null) request.Headers.Accept.ParseAdd(accept);
        return await lab.Http.SendAsync(request, Ct);
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values) ? string.Join(",", values) : null;

    private static async Task<string> ErrorCodeAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        string body = await response.Content.ReadAsStringAsync(Ct);
        using var doc = JsonDocument.Parse(body);
        var error = Assert.Single(doc.RootElement.GetProperty("errors").EnumerateArray());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()), body);
        return error.GetProperty("code").GetString()!;
    }

    /// <summary>A 200 referrers answer: the index media type, exactly <paramref name="expected"/>, and the filter header when one was applied.</summary>
    private static async Task AssertIndexAsync(HttpResponseMessage response, byte[] expected, bool filtered)
    {
        Assert.True(response.StatusCode == HttpStatusCode.OK, response.ToString());
        Assert.Equal(IndexType, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(expected.Length, response.Content.Headers.ContentLength);
        Assert.Equal(filtered ? "artifactType" : null, Header(response, "OCI-Filters-Applied"));
        byte[] body = await response.Content.ReadAsByteArrayAsync(Ct);
        Assert.Equal(OciImage.Digest(expected), OciImage.Digest(body));
    }

    private void AssertNodeHealthy()
    {
        Assert.False(lab.Node.HasExited, lab.Node.ToString());
        Assert.DoesNotContain("unhandled exception", lab.Node.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("fail:", lab.Node.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReferrersArePassedThroughUnchangedAndServedFromTheNodesLastAnswerWhileTheUpstreamIsDown()
    {
        await using var upstream = await ReferrersUpstream.StartAsync();
        string ns = "ns=" + Uri.EscapeDataString(upstream.Host);
        string referrers = $"{lab.MirrorUrl}/v2/{ReferrersUpstream.Repository}/referrers/{upstream.SubjectDigest}";
        string filter = "artifactType=" + Uri.EscapeDataString(ReferrersUpstream.SignatureType);

        using (var all = await GetAsync($"{referrers}?{ns}")) await AssertIndexAsync(all, upstream.AllReferrers, filtered: false);
        using (var signatures = await GetAsync($"{referrers}?{filter}&{ns}")) await AssertIndexAsync(signatures, upstream.SignatureReferrers, filtered: true);
        using (var head = await GetAsync($"{referrers}?{ns}", HttpMethod.Head))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(upstream.AllReferrers.Length, head.Content.Headers.ContentLength);
            Assert.Empty(await head.Content.ReadAsByteArrayAsync(Ct));
        }
        // The upstream saw the mirror's requests with the token it handed out, the filter, and no ns.
        var seen = upstream.Seen.Where(s => s.PathAndQuery.Contains("/referrers/", StringComparison.Ordinal)).ToList();
        Assert.Contains(seen, s => s.Authorization == "Bearer " + ReferrersUpstream.Token && s.PathAndQuery.EndsWith("?" + filter, StringComparison.Ordinal));
        Assert.DoesNotContain(seen, s => s.PathAndQuery.Contains("ns=", StringComparison.Ordinal));
        Assert.Contains(upstream.Seen, s => s.PathAndQuery.StartsWith("/token?", StringComparison.Ordinal));

        // A subject without referrers: the upstream's empty index; a repository the upstream does not have: its 404.
        string other = OciImage.Digest("a manifest nobody refers to"u8);
        using (var none = await GetAsync($"{lab.MirrorUrl}/v2/{ReferrersUpstream.Repository}/referrers/{other}?{ns}"))
        {
            Assert.Equal(HttpStatusCode.OK, none.StatusCode);
            Assert.Equal(IndexType, none.Content.Headers.ContentType?.MediaType);
            using var index = JsonDocument.Parse(await none.Content.ReadAsByteArrayAsync(Ct));
            Assert.Equal(0, index.RootElement.GetProperty("manifests").GetArrayLength());
        }
        using (var noRepo = await GetAsync($"{lab.MirrorUrl}/v2/demo/absent/referrers/{upstream.SubjectDigest}?{ns}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, noRepo.StatusCode);
            Assert.Equal("NAME_UNKNOWN", await ErrorCodeAsync(noRepo));
        }
        // What a verifier fetches next: the signature manifest by digest.
        string signature = $"{lab.MirrorUrl}/v2/{ReferrersUpstream.Repository}/manifests/{upstream.SignatureDigest}?{ns}";
        using (var sig = await GetAsync(signature, accept: "application/vnd.oci.image.manifest.v1+json"))
        {
            Assert.Equal(HttpStatusCode.OK, sig.StatusCode);
            Assert.Equal(upstream.Signature, await sig.Content.ReadAsByteArrayAsync(Ct));
        }

        await upstream.StopAsync();
        var clock = Stopwatch.StartNew();
        using (var stale = await GetAsync($"{referrers}?{ns}"))
        {
            Assert.True(clock.Elapsed < Quick, $"answering with the upstream down took {clock.Elapsed.TotalSeconds:0.0} s");
            await AssertIndexAsync(stale, upstream.AllReferrers, filtered: false);
            Assert.True(long.TryParse(Header(stale, "Age"), out long age) && age >= 0, $"no Age header on the node's saved answer: {stale}");
        }
        using (var stale = await GetAsync($"{referrers}?{filter}&{ns}")) await AssertIndexAsync(stale, upstream.SignatureReferrers, filtered: true);
        // The signature itself comes from the node's verified copy, like any manifest by digest of an anonymous registry.
        using (var sig = await GetAsync(signature, accept: "application/vnd.oci.image.manifest.v1+json"))
        {
            Assert.Equal(HttpStatusCode.OK, sig.StatusCode);
            Assert.Equal(upstream.Signature, await sig.Content.ReadAsByteArrayAsync(Ct));
        }
        // A query this node never asked the upstream: nothing it could vouch for.
        using (var never = await GetAsync($"{referrers}?artifactType={Uri.EscapeDataString(ReferrersUpstream.SbomType)}&{ns}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, never.StatusCode);
            Assert.Equal("MANIFEST_UNKNOWN", await ErrorCodeAsync(never));
        }
        AssertNodeHealthy();
    }

    /// <summary>Starts <c>swarm node</c> whose registries.json holds credentials for <paramref name="registry"/>; returns it and its mirror's URL.</summary>
    private static async Task<(SwarmProcess Node, string MirrorUrl)> StartNodeWithCredentialsAsync(TempDirectory dir, string registry, string user, string password)
    {
        string config = dir.Combine("registries.json");
        File.WriteAllText(config, JsonSerializer.Serialize(new Dictionary<string, object> { [registry] = new Dictionary<string, string> { ["username"] = user, ["password"] = password } }));
        for (int attempt = 0; ; attempt++)
        {
            int mirror = FreePort.Get();
            var node = SwarmProcess.Start(["node", "--data-dir", dir.Combine("node"), "--listen", "127.0.0.1:0", "--mirror", $"127.0.0.1:{mirror}",
                "--metrics", "off", "--upstream", registry, "--registry-config", config]);
            try
            {
                await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, RegistryMirrorFixture.Timeout, "the node to start");
            }
            catch
            {
                await node.DisposeAsync();
                throw;
            }
            if (!node.HasExited) return (node, $"http://127.0.0.1:{mirror}");
            string output = node.ToString();
            await node.DisposeAsync();
            if (attempt == 2) throw new InvalidOperationException($"the node exited at start: {output}");
        }
    }

    [Fact]
    public async Task ThePrivateReferrersOfARegistryComeWithTheCredentialsOfRegistriesJsonOnly()
    {
        const string User = "ci-bot", Password = "referrers password";
        string basic = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{User}:{Password}"));
        await using var upstream = await ReferrersUpstream.StartAsync(basic);
        using var dir = new TempDirectory();
        var (node, mirrorUrl) = await StartNodeWithCredentialsAsync(dir, upstream.Host, User, Password);
        await using (node)
        {
            // No ?ns=: the registry is this node's --upstream, and registries.json names it.
            using (var all = await GetAsync($"{mirrorUrl}/v2/{ReferrersUpstream.Repository}/referrers/{upstream.SubjectDigest}"))
                await AssertIndexAsync(all, upstream.AllReferrers, filtered: false);
            Assert.Contains(upstream.Seen, s => s.PathAndQuery.StartsWith("/token?", StringComparison.Ordinal) && s.Authorization == basic);
            Assert.DoesNotContain("fail:", node.Stderr, StringComparison.Ordinal);
        }
        // The shared node has no credentials for it: the token service refuses, and so does the mirror, quickly.
        var clock = Stopwatch.StartNew();
        using var anonymous = await GetAsync($"{lab.MirrorUrl}/v2/{ReferrersUpstream.Repository}/referrers/{upstream.SubjectDigest}?ns={Uri.EscapeDataString(upstream.Host)}");
        Assert.True(clock.Elapsed < Quick, $"the refusal took {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(HttpStatusCode.NotFound, anonymous.StatusCode);
        Assert.Equal("DENIED", await ErrorCodeAsync(anonymous));
        AssertNodeHealthy();
    }

    [Fact]
    public async Task WithoutReferrersSupportUpstreamTheApiIs404AndTheReferrersTagResolvesThroughTheMirror()
    {
        string subject = lab.Image.ManifestDigest;
        string referrersTag = "sha256-" + subject["sha256:".Length..];
        using (var api = await GetAsync($"{lab.MirrorUrl}/v2/{RegistryMirrorFixture.Repository}/referrers/{subject}{lab.Ns}"))
        {
            // The spec: a registry without the API answers 404, and the client falls back to the referrers tag.
            Assert.Equal(HttpStatusCode.NotFound, api.StatusCode);
            Assert.Equal("UNSUPPORTED", await ErrorCodeAsync(api));
        }
        using (var noTagYet = await GetAsync($"{lab.MirrorUrl}/v2/{RegistryMirrorFixture.Repository}/manifests/{referrersTag}{lab.Ns}", accept: IndexType))
        {
            Assert.Equal(HttpStatusCode.NotFound, noTagYet.StatusCode);
            Assert.Equal("MANIFEST_UNKNOWN", await ErrorCodeAsync(noTagYet));
        }

        // A client without the API pushes the signature and then the index under the referrers tag (as oras and notation do).
        using var dir = new TempDirectory();
        var signature = OciImage.WriteLayout(dir.Combine("sig"), seed: 31, 1000);
        await Skopeo.PushLayoutAsync(signature.LayoutDirectory, $"{lab.Registry.Host}/{RegistryMirrorFixture.Repository}:signature", RegistryMirrorFixture.Timeout);
        byte[] index = Encoding.UTF8.GetBytes($"{{\"schemaVersion\":2,\"mediaType\":\"{IndexType}\",\"manifests\":[{{\"mediaType\":\"{OciImage.ManifestType}\"," +
            $"\"digest\":\"{signature.ManifestDigest}\",\"size\":{signature.Manifest.Size},\"artifactType\":\"{ReferrersUpstream.SignatureType}\"}}]}}");
        using (var put = new HttpRequestMessage(HttpMethod.Put, $"{lab.Registry.Url}/v2/{RegistryMirrorFixture.Repository}/manifests/{referrersTag}"))
        {
            put.Content = new ByteArrayContent(index);
            put.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(IndexType);
            using var pushed = await lab.Http.SendAsync(put, Ct);
            Assert.True(pushed.StatusCode == HttpStatusCode.Created, $"{pushed}\n{await pushed.Content.ReadAsStringAsync(Ct)}");
        }

        foreach (var method in new[] { HttpMethod.Get, HttpMethod.Head })
        {
            using var tag = await GetAsync($"{lab.MirrorUrl}/v2/{RegistryMirrorFixture.Repository}/manifests/{referrersTag}{lab.Ns}", method, IndexType);
            Assert.True(tag.StatusCode == HttpStatusCode.OK, tag.ToString());
            Assert.Equal(IndexType, tag.Content.Headers.ContentType?.MediaType);
            Assert.Equal(OciImage.Digest(index), Header(tag, "Docker-Content-Digest"));
            Assert.Equal(index.Length, tag.Content.Headers.ContentLength);
            byte[] body = await tag.Content.ReadAsByteArrayAsync(Ct);
            Assert.Equal(method == HttpMethod.Get ? index : [], body);
        }
        using (var sig = await GetAsync($"{lab.MirrorUrl}/v2/{RegistryMirrorFixture.Repository}/manifests/{signature.ManifestDigest}{lab.Ns}", accept: OciImage.ManifestType))
        {
            Assert.Equal(HttpStatusCode.OK, sig.StatusCode);
            Assert.Equal(signature.Read(signature.Manifest), await sig.Content.ReadAsByteArrayAsync(Ct));
        }
        AssertNodeHealthy();
    }
}
