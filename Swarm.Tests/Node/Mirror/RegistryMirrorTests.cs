using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Mirror;

/// <summary>
/// One real registry (docker-registry) holding a small three-layer image pushed with skopeo, and one real
/// <c>swarm node</c> whose registry mirror listens on 127.0.0.1 with that registry as its default upstream.
/// </summary>
public sealed class RegistryMirrorFixture : IAsyncLifetime
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    public const string Repository = "demo/app";

    private readonly TempDirectory _dir = new();

    public DockerRegistry Registry { get; private set; } = null!;
    public SwarmProcess Node { get; private set; } = null!;
    public OciImageInfo Image { get; private set; } = null!;
    /// <summary>The manifest as the registry itself serves it for the tag.</summary>
    public byte[] UpstreamManifest { get; private set; } = [];
    public int MirrorPort { get; private set; }
    public string MirrorUrl => $"http://127.0.0.1:{MirrorPort}";
    public HttpClient Http { get; } = new(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None, ConnectTimeout = TimeSpan.FromSeconds(5) })
    {
        Timeout = TimeSpan.FromSeconds(60),
    };
    /// <summary><c>?ns=</c> naming the registry, as containerd sends it.</summary>
    public string Ns => "?ns=" + Uri.EscapeDataString(Registry.Host);

    public async ValueTask InitializeAsync()
    {
        Image = OciImage.WriteLayout(_dir.Combine("layout"), seed: 5, 1024 * 1024 + 5, 512 * 1024 + 3, 700 * 1024);
        Registry = await DockerRegistry.StartAsync();
        await Skopeo.PushLayoutAsync(Image.LayoutDirectory, $"{Registry.Host}/{Repository}:v1", Timeout);
        using (var request = new HttpRequestMessage(HttpMethod.Get, $"{Registry.Url}/v2/{Repository}/manifests/v1"))
        {
            request.Headers.Accept.ParseAdd(OciImage.ManifestType);
            using var response = await Http.SendAsync(request);
            response.EnsureSuccessStatusCode();
            UpstreamManifest = await response.Content.ReadAsByteArrayAsync();
        }
        Node = await StartNodeAsync(_dir.Combine("node"), Registry.Host);
    }

    /// <summary>Starts <c>swarm node</c> with the mirror on a free port; another port if that one was taken meanwhile.</summary>
    private async Task<SwarmProcess> StartNodeAsync(string dataDir, string upstream)
    {
        for (int attempt = 0; ; attempt++)
        {
            MirrorPort = FreePort.Get();
            var node = SwarmProcess.Start("node", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--metrics", "off",
                "--mirror", $"127.0.0.1:{MirrorPort}", "--upstream", upstream);
            var clock = Stopwatch.StartNew();
            while (!node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) && !node.HasExited)
            {
                if (clock.Elapsed > Timeout)
                {
                    await node.DisposeAsync();
                    throw new TimeoutException($"the node did not start within {Timeout.TotalSeconds:0} s: {node}");
                }
                await Task.Delay(20);
            }
            if (!node.HasExited) return node;
            await node.DisposeAsync();
            if (attempt == 2) throw new InvalidOperationException($"the node exited at start: {node}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        if (Node != null) await Node.DisposeAsync();
        if (Registry != null) await Registry.DisposeAsync();
        _dir.Dispose();
    }
}

/// <summary>
/// The node's OCI registry mirror against a real registry, endpoint by endpoint, as the distribution spec and containerd
/// expect: <c>/v2/</c>, manifests by tag and digest, blobs, HEAD, single byte ranges, <c>?ns=</c> and the default
/// upstream, quick 404s for what does not exist or cannot exist, 400s where the spec asks for them, 405 for writes, the node's own
/// last resolution of a tag while the upstream is down, and containerd pulling through it.
/// </summary>
[Collection(DhtNetworkCollection.Name)]
public sealed class RegistryMirrorTests(RegistryMirrorFixture lab) : IClassFixture<RegistryMirrorFixture>
{
    /// <summary>Generous: about not hanging (a client waits for the answer before it moves on), not about speed.</summary>
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(15);
    private static readonly string Missing = OciImage.Digest("no such blob in any registry"u8);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string MirrorPath(string kind, string reference, string? repository = null, bool ns = true) =>
        $"{lab.MirrorUrl}/v2/{repository ?? RegistryMirrorFixture.Repository}/{kind}/{reference}{(ns ? lab.Ns : "")}";

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string url, string? range = null)
    {
        var request = new HttpRequestMessage(method, url);
        if (url.Contains("/manifests/", StringComparison.Ordinal))
            foreach (var type in new[] { OciImage.ManifestType, "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.v2+json" })
                request.Headers.Accept.ParseAdd(type);
        if (range != null) request.Headers.TryAddWithoutValidation("Range", range);
        return await lab.Http.SendAsync(request, Ct);
    }

    private static async Task<string> ErrorCodeAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        string body = await response.Content.ReadAsStringAsync(Ct);
        using var doc = JsonDocument.Parse(body);
        var error = Assert.Single(doc.RootElement.GetProperty("errors").EnumerateArray());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()), body);
        return error.GetProperty("code").GetString()!;
    }

    private static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? string.Join(",", values) : throw new Xunit.Sdk.XunitException($"no {name} header in {response}");

    /// <summary>The node logged no failure and no unhandled exception, and still runs.</summary>
    private void AssertNodeHealthy()
    {
        string stderr = lab.Node.Stderr;
        Assert.False(lab.Node.HasExited, lab.Node.ToString());
        Assert.DoesNotContain("unhandled exception", stderr, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("fail:", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("crit:", stderr, StringComparison.Ordinal);
    }

    private async Task AssertManifestAsync(HttpResponseMessage response, bool head)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(lab.Image.ManifestDigest, Header(response, "Docker-Content-Digest"));
        Assert.Equal(OciImage.ManifestType, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(lab.UpstreamManifest.Length, response.Content.Headers.ContentLength);
        byte[] body = await response.Content.ReadAsByteArrayAsync(Ct);
        if (head)
        {
            Assert.Empty(body);
            return;
        }
        Assert.Equal(lab.UpstreamManifest, body);
        Assert.Equal(lab.Image.ManifestDigest, OciImage.Digest(body));
    }

    [Fact]
    public async Task TheBaseEndpointAnswers200WithAnEmptyObject()
    {
        using var get = await SendAsync(HttpMethod.Get, $"{lab.MirrorUrl}/v2/");
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal("registry/2.0", Header(get, "Docker-Distribution-API-Version"));
        Assert.Equal("{}", await get.Content.ReadAsStringAsync(Ct));
        using var head = await SendAsync(HttpMethod.Head, $"{lab.MirrorUrl}/v2/");
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync(Ct));
        AssertNodeHealthy();
    }

    [Fact]
    public async Task AManifestByTagWithNsIsTheUpstreamsBytesForGetAndHead()
    {
        // The image as skopeo pushed it is the layout's manifest, byte for byte.
        Assert.Equal(lab.Image.ManifestDigest, OciImage.Digest(lab.UpstreamManifest));
        using (var get = await SendAsync(HttpMethod.Get, MirrorPath("manifests", "v1"))) await AssertManifestAsync(get, head: false);
        using (var head = await SendAsync(HttpMethod.Head, MirrorPath("manifests", "v1"))) await AssertManifestAsync(head, head: true);
        AssertNodeHealthy();
    }

    [Fact]
    public async Task AManifestByDigestWithNsIsTheUpstreamsBytesForGetAndHead()
    {
        using (var head = await SendAsync(HttpMethod.Head, MirrorPath("manifests", lab.Image.ManifestDigest))) await AssertManifestAsync(head, head: true);
        using (var get = await SendAsync(HttpMethod.Get, MirrorPath("manifests", lab.Image.ManifestDigest))) await AssertManifestAsync(get, head: false);
        // Again: now from the node's own copy.
        using (var again = await SendAsync(HttpMethod.Get, MirrorPath("manifests", lab.Image.ManifestDigest))) await AssertManifestAsync(again, head: false);
        AssertNodeHealthy();
    }

    [Fact]
    public async Task BlobsAnswerHeadAndGetWithLengthDigestAndTheirExactBytes()
    {
        // Layers[1] is left to the range test, so that its first request finds the blob not yet fetched.
        foreach (var blob in new[] { lab.Image.Layers[0], lab.Image.Config, lab.Image.Layers[2] })
        {
            using (var head = await SendAsync(HttpMethod.Head, MirrorPath("blobs", blob.Digest)))
            {
                Assert.Equal(HttpStatusCode.OK, head.StatusCode);
                Assert.Equal(blob.Size, head.Content.Headers.ContentLength);
                Assert.Equal(blob.Digest, Header(head, "Docker-Content-Digest"));
                Assert.Empty(await head.Content.ReadAsByteArrayAsync(Ct));
            }
            using var get = await SendAsync(HttpMethod.Get, MirrorPath("blobs", blob.Digest));
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
            Assert.Equal(blob.Size, get.Content.Headers.ContentLength);
            Assert.Equal(blob.Digest, Header(get, "Docker-Content-Digest"));
            Assert.Equal("bytes", Header(get, "Accept-Ranges"));
            byte[] body = await get.Content.ReadAsByteArrayAsync(Ct);
            Assert.Equal(blob.Digest, OciImage.Digest(body));
            Assert.Equal(lab.Image.Read(blob), body);
        }
        AssertNodeHealthy();
    }

    [Fact]
    public async Task ASingleRangeIs206WithTheExactBytesAndARangePastTheEndIs416()
    {
        var blob = lab.Image.Layers[1];
        byte[] whole = lab.Image.Read(blob);
        long size = blob.Size;
        var ranges = new[] { ("bytes=-16", size - 16, size - 1), ("bytes=10-19", 10L, 19L), ("bytes=100-", 100L, size - 1), ("bytes=0-", 0L, size - 1) };
        async Task CheckAsync((string Range, long From, long To) r)
        {
            using var response = await SendAsync(HttpMethod.Get, MirrorPath("blobs", blob.Digest), r.Range);
            Assert.True(HttpStatusCode.PartialContent == response.StatusCode, $"{r.Range}: {response}");
            Assert.Equal($"bytes {r.From}-{r.To}/{size}", Header(response, "Content-Range"));
            Assert.Equal(r.To - r.From + 1, response.Content.Headers.ContentLength);
            Assert.Equal(blob.Digest, Header(response, "Docker-Content-Digest"));
            Assert.Equal(whole[(int)r.From..(int)(r.To + 1)], await response.Content.ReadAsByteArrayAsync(Ct));
        }
        // No other test asks for this blob: these first requests, all at once, are served as the blob streams in from
        // the upstream (a suffix range must wait for the whole blob to match its digest); then again from the node's copy.
        await Task.WhenAll(ranges.Select(CheckAsync));
        foreach (var r in ranges) await CheckAsync(r);
        using (var head = await SendAsync(HttpMethod.Head, MirrorPath("blobs", blob.Digest), "bytes=10-19"))
        {
            Assert.Equal(HttpStatusCode.PartialContent, head.StatusCode);
            Assert.Equal(10, head.Content.Headers.ContentLength);
        }
        using (var past = await SendAsync(HttpMethod.Get, MirrorPath("blobs", blob.Digest), "bytes=999999999-"))
        {
            Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, past.StatusCode);
            Assert.Equal($"bytes */{size}", Header(past, "Content-Range"));
        }
        AssertNodeHealthy();
    }

    [Fact]
    public async Task WithoutNsTheDefaultUpstreamServesTheRequest()
    {
        using (var manifest = await SendAsync(HttpMethod.Get, MirrorPath("manifests", "v1", ns: false))) await AssertManifestAsync(manifest, head: false);
        var blob = lab.Image.Layers[2];
        using var get = await SendAsync(HttpMethod.Get, MirrorPath("blobs", blob.Digest, ns: false));
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal(lab.Image.Read(blob), await get.Content.ReadAsByteArrayAsync(Ct));
        AssertNodeHealthy();
    }

    [Fact]
    public async Task TheTagListIsTheUpstreamsAndAnUnknownRepositoryIs404()
    {
        using var get = await SendAsync(HttpMethod.Get, $"{lab.MirrorUrl}/v2/demo/app/tags/list{lab.Ns}");
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        using (var tags = System.Text.Json.JsonDocument.Parse(await get.Content.ReadAsStringAsync(Ct)))
        {
            Assert.Equal("demo/app", tags.RootElement.GetProperty("name").GetString());
            Assert.Contains("v1", tags.RootElement.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        }
        using var missing = await SendAsync(HttpMethod.Get, $"{lab.MirrorUrl}/v2/demo/nothing-here/tags/list{lab.Ns}");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Contains("NAME_UNKNOWN", await missing.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        using var bad = await SendAsync(HttpMethod.Get, $"{lab.MirrorUrl}/v2/Demo/tags/list");
        Assert.Equal(HttpStatusCode.NotFound, bad.StatusCode);
        Assert.Equal("NAME_UNKNOWN", await ErrorCodeAsync(bad));
        AssertNodeHealthy();
    }

    [Fact]
    public async Task UnknownBlobsManifestsAndTagsAre404WithTheirCodesQuickly()
    {
        var cases = new (HttpMethod Method, string Url, string? Code)[]
        {
            (HttpMethod.Get, MirrorPath("blobs", Missing), "BLOB_UNKNOWN"),
            (HttpMethod.Head, MirrorPath("blobs", Missing), null),
            (HttpMethod.Get, MirrorPath("blobs", Missing, ns: false), "BLOB_UNKNOWN"),
            (HttpMethod.Get, MirrorPath("manifests", Missing), "MANIFEST_UNKNOWN"),
            (HttpMethod.Head, MirrorPath("manifests", Missing), null),
            (HttpMethod.Get, MirrorPath("manifests", "no-such-tag"), "MANIFEST_UNKNOWN"),
            (HttpMethod.Head, MirrorPath("manifests", "no-such-tag"), null),
            (HttpMethod.Get, MirrorPath("manifests", "v1", repository: "demo/nothing-here"), "MANIFEST_UNKNOWN"),
            (HttpMethod.Get, MirrorPath("blobs", Missing, repository: "demo/nothing-here"), "BLOB_UNKNOWN"),
            // References that cannot exist: the spec's only failure for GET/HEAD of manifests and blobs is 404 (the OCI
            // conformance suite asks for .INVALID_MANIFEST_NAME).
            (HttpMethod.Get, MirrorPath("manifests", ".INVALID_MANIFEST_NAME"), "MANIFEST_UNKNOWN"),
            (HttpMethod.Head, MirrorPath("manifests", ".INVALID_MANIFEST_NAME"), null),
            (HttpMethod.Get, MirrorPath("manifests", ".INVALID_MANIFEST_NAME", ns: false), "MANIFEST_UNKNOWN"),
            (HttpMethod.Get, MirrorPath("manifests", "-v1"), "MANIFEST_UNKNOWN"),
            (HttpMethod.Get, MirrorPath("manifests", "v1/extra"), "MANIFEST_UNKNOWN"),
            (HttpMethod.Get, MirrorPath("manifests", new string('t', 129)), "MANIFEST_UNKNOWN"),
            (HttpMethod.Get, MirrorPath("manifests", "sha256:xyz"), "MANIFEST_UNKNOWN"),
            (HttpMethod.Head, MirrorPath("manifests", "sha256:xyz"), null),
            (HttpMethod.Get, MirrorPath("manifests", "sha256:" + new string('A', 64)), "MANIFEST_UNKNOWN"),
            (HttpMethod.Get, MirrorPath("manifests", "sha512:" + new string('a', 128)), "MANIFEST_UNKNOWN"),
            (HttpMethod.Get, MirrorPath("blobs", "sha256:xyz"), "BLOB_UNKNOWN"),
            (HttpMethod.Head, MirrorPath("blobs", "sha256:xyz"), null),
            (HttpMethod.Get, MirrorPath("blobs", "sha256:" + new string('A', 64)), "BLOB_UNKNOWN"),
            (HttpMethod.Get, MirrorPath("blobs", "sha512:" + new string('a', 128)), "BLOB_UNKNOWN"),
            (HttpMethod.Get, MirrorPath("blobs", "latest"), "BLOB_UNKNOWN"),
            (HttpMethod.Get, MirrorPath("blobs", Missing, repository: "UPPER/app"), "NAME_UNKNOWN"),
            (HttpMethod.Head, MirrorPath("manifests", "v1", repository: "UPPER/app"), null),
            (HttpMethod.Get, MirrorPath("manifests", "v1", repository: "demo/app-"), "NAME_UNKNOWN"),
        };
        foreach (var (method, url, code) in cases)
        {
            var clock = Stopwatch.StartNew();
            using var response = await SendAsync(method, url);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{method} {url}: {response}");
            Assert.True(clock.Elapsed < Quick, $"{method} {url} took {clock.Elapsed.TotalSeconds:0.0} s");
            if (code != null) Assert.Equal(code, await ErrorCodeAsync(response));
            else Assert.Empty(await response.Content.ReadAsByteArrayAsync(Ct));
        }
        AssertNodeHealthy();
    }

    /// <summary>
    /// 400 only where the spec asks for it (a malformed name or digest of the referrers API; a push with a malformed
    /// digest, as the conformance suite's PUT of sha256:totallywrong checks), 405 for writes, 404 for other paths.
    /// </summary>
    public static TheoryData<string, string, int, string?> Malformed => new()
    {
        { "GET", "/v2/demo/app/referrers/sha256:xyz", 400, "DIGEST_INVALID" },
        { "HEAD", "/v2/demo/app/referrers/sha256:xyz", 400, null },
        { "GET", "/v2/demo/app/referrers/latest", 400, "DIGEST_INVALID" },
        { "GET", "/v2/demo/app/referrers/sha256:" + new string('A', 64), 400, "DIGEST_INVALID" },
        { "GET", "/v2/UPPER/app/referrers/" + Missing, 400, "NAME_INVALID" },
        { "GET", "/v2/demo/app/manifests/v1?ns=example.com%2Fpath", 400, "UNSUPPORTED" },
        { "GET", "/v2/demo/app/referrers/" + Missing + "?ns=example.com%2Fpath", 400, "UNSUPPORTED" },
        { "PUT", "/v2/demo/app/manifests/sha256:totallywrong", 400, "DIGEST_INVALID" },
        { "PUT", "/v2/UPPER/app/manifests/v1", 400, "NAME_INVALID" },
        { "DELETE", "/v2/demo/app/blobs/sha256:xyz", 400, "DIGEST_INVALID" },
        { "POST", "/v2/demo/app/blobs/uploads/", 405, "UNSUPPORTED" },
        { "PATCH", "/v2/demo/app/blobs/uploads/0d8f", 405, "UNSUPPORTED" },
        { "PUT", "/v2/demo/app/manifests/v1", 405, "UNSUPPORTED" },
        { "PUT", "/v2/demo/app/manifests/" + Missing, 405, "UNSUPPORTED" },
        { "DELETE", "/v2/demo/app/blobs/" + Missing, 405, "UNSUPPORTED" },
        { "DELETE", "/v2/demo/app/manifests/v1", 405, "UNSUPPORTED" },
        { "PUT", "/not-v2", 405, "UNSUPPORTED" },
        { "GET", "/v2/demo/app", 404, "UNSUPPORTED" },
        { "GET", "/not-v2", 404, "UNSUPPORTED" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task MalformedRequestsGetAClear4xx(string method, string path, int status, string? code)
    {
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(new HttpMethod(method), lab.MirrorUrl + path);
        if (method is "PUT" or "POST") request.Content = new ByteArrayContent("{}"u8.ToArray());
        using var response = await lab.Http.SendAsync(request, Ct);
        Assert.True(status == (int)response.StatusCode, $"{method} {path}: {response}");
        Assert.True(clock.Elapsed < Quick, $"{method} {path} took {clock.Elapsed.TotalSeconds:0.0} s");
        if (code != null) Assert.Equal(code, await ErrorCodeAsync(response));
        else Assert.Empty(await response.Content.ReadAsByteArrayAsync(Ct));
        AssertNodeHealthy();
    }

    [Fact]
    public async Task WhileTheUpstreamIsDownATagIsServedFromTheNodesLastResolutionOnly()
    {
        using var dir = new TempDirectory();
        var image = OciImage.WriteLayout(dir.Combine("layout"), seed: 11, 64 * 1024);
        await using var other = await DockerRegistry.StartAsync();
        await Skopeo.PushLayoutAsync(image.LayoutDirectory, $"{other.Host}/demo/other:v1", RegistryMirrorFixture.Timeout);
        await Skopeo.PushLayoutAsync(image.LayoutDirectory, $"{other.Host}/demo/other:v2", RegistryMirrorFixture.Timeout);
        string ns = "?ns=" + Uri.EscapeDataString(other.Host);
        string v1 = $"{lab.MirrorUrl}/v2/demo/other/manifests/v1";

        var layer = image.Layers[0];
        string blobUrl = $"{lab.MirrorUrl}/v2/demo/other/blobs/{layer.Digest}{ns}";
        byte[] first;
        using (var resolved = await SendAsync(HttpMethod.Get, v1 + ns))
        {
            Assert.Equal(HttpStatusCode.OK, resolved.StatusCode);
            Assert.Equal(image.ManifestDigest, Header(resolved, "Docker-Content-Digest"));
            first = await resolved.Content.ReadAsByteArrayAsync(Ct);
        }
        using (var blob = await SendAsync(HttpMethod.Get, blobUrl))
        {
            Assert.Equal(HttpStatusCode.OK, blob.StatusCode);
            Assert.Equal(image.Read(layer), await blob.Content.ReadAsByteArrayAsync(Ct));
        }
        // ?ns= picked that registry: the default upstream has no demo/other.
        using (var atDefault = await SendAsync(HttpMethod.Get, v1))
        {
            Assert.Equal(HttpStatusCode.NotFound, atDefault.StatusCode);
            Assert.Equal("MANIFEST_UNKNOWN", await ErrorCodeAsync(atDefault));
        }

        await other.StopAsync();
        var clock = Stopwatch.StartNew();
        using (var again = await SendAsync(HttpMethod.Get, v1 + ns))
        {
            Assert.True(clock.Elapsed < Quick, $"answering with the upstream down took {clock.Elapsed.TotalSeconds:0.0} s");
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            Assert.Equal(image.ManifestDigest, Header(again, "Docker-Content-Digest"));
            Assert.Equal(OciImage.ManifestType, again.Content.Headers.ContentType?.MediaType);
            Assert.Equal(first, await again.Content.ReadAsByteArrayAsync(Ct));
        }
        using (var head = await SendAsync(HttpMethod.Head, v1 + ns))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(image.ManifestDigest, Header(head, "Docker-Content-Digest"));
            Assert.Equal(first.Length, head.Content.Headers.ContentLength);
        }
        // The node's own verified copy of a blob (an anonymous registry: no confirmation needed).
        using (var blob = await SendAsync(HttpMethod.Get, blobUrl))
        {
            Assert.Equal(HttpStatusCode.OK, blob.StatusCode);
            Assert.Equal(image.Read(layer), await blob.Content.ReadAsByteArrayAsync(Ct));
        }
        // The manifest it resolved is stored (in the background) and then served by digest too.
        await Poll.UntilAsync(async () =>
        {
            using var byDigest = await SendAsync(HttpMethod.Get, $"{lab.MirrorUrl}/v2/demo/other/manifests/{image.ManifestDigest}{ns}");
            if (byDigest.StatusCode == HttpStatusCode.NotFound) return false;
            Assert.Equal(HttpStatusCode.OK, byDigest.StatusCode);
            Assert.Equal(first, await byDigest.Content.ReadAsByteArrayAsync(Ct));
            return true;
        }, Quick, "the resolved manifest to be served by digest");
        // v2 exists upstream (same image) but this node never resolved it: it cannot vouch for it.
        clock.Restart();
        using (var never = await SendAsync(HttpMethod.Get, $"{lab.MirrorUrl}/v2/demo/other/manifests/v2{ns}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, never.StatusCode);
            Assert.Equal("MANIFEST_UNKNOWN", await ErrorCodeAsync(never));
            Assert.True(clock.Elapsed < Quick, $"the 404 with the upstream down took {clock.Elapsed.TotalSeconds:0.0} s");
        }
        AssertNodeHealthy();
    }

    [Fact]
    public async Task ContainerdPullsAnImageThroughTheMirror()
    {
        // An image of its own, so every blob is new to the node and its log shows the mirror fetching each one.
        using var dir = new TempDirectory();
        var image = OciImage.WriteLayout(dir.Combine("layout"), seed: 21, 300 * 1024, 200 * 1024 + 1);
        await Skopeo.PushLayoutAsync(image.LayoutDirectory, $"{lab.Registry.Host}/demo/ctr:v1", RegistryMirrorFixture.Timeout);
        await using var containerd = await Containerd.StartAsync();
        containerd.WriteHostsToml(lab.Registry.Host, lab.MirrorUrl);

        var pull = await containerd.PullAsync($"{lab.Registry.Host}/demo/ctr:v1", RegistryMirrorFixture.Timeout);
        Assert.True(pull.Succeeded, pull.ToString());
        var digests = await containerd.ContentDigestsAsync();
        foreach (var blob in image.AllBlobs) Assert.Contains(blob.Digest, digests);
        foreach (var blob in (OciBlob[])[image.Config, .. image.Layers])
            Assert.Contains($"mirror: {blob.Digest} ({blob.Size} bytes) from the upstream", lab.Node.Stderr, StringComparison.Ordinal);
        AssertNodeHealthy();
    }
}
