using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Mirror;

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
