using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
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
/// Private images and the swarm, with real <c>swarm node</c> processes and a fake registry (Kestrel on 127.0.0.1) that
/// speaks the Bearer token dance: for a registry with credentials configured, a node serves a blob or manifest from the
/// swarm only after the upstream has confirmed (a HEAD with this node's own credentials) that this node may read it, so
/// a private image never reaches a node that could not fetch it itself. Anonymous public images are served from the
/// swarm even when the upstream is unreachable, unless a node marked the digest as fetched with credentials.
/// </summary>
[Collection(DhtNetworkCollection.Name)]
public sealed class PrivateRegistryTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    /// <summary>A refusal must come quickly (a client waits for it before moving on), far below the mirror's 30 s first-byte timeout.</summary>
    private static readonly TimeSpan Quick = TimeSpan.FromSeconds(15);
    private const string Repository = "team/private-app";
    private const string User = "ci-bot";
    private const string Password = "correct horse battery staple";
    private const int MiB = 1024 * 1024;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string Sha256(byte[] data) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(data));

    private static string Basic(string user, string password) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));

    /// <summary>One image: a config blob, one layer of random bytes, and the OCI manifest naming both.</summary>
    private sealed record TestImage(byte[] Manifest, string ManifestDigest, byte[] Config, string ConfigDigest, byte[] Layer, string LayerDigest)
    {
        public static TestImage Create(int layerBytes)
        {
            byte[] layer = RandomNumberGenerator.GetBytes(layerBytes);
            byte[] config = Encoding.UTF8.GetBytes($"{{\"architecture\":\"amd64\",\"os\":\"linux\",\"nonce\":\"{Guid.NewGuid():N}\"}}");
            string layerDigest = Sha256(layer), configDigest = Sha256(config);
            byte[] manifest = Encoding.UTF8.GetBytes(
                "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                + $"\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{configDigest}\",\"size\":{config.Length}}},"
                + $"\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"{layerDigest}\",\"size\":{layer.Length}}}]}}");
            return new TestImage(manifest, Sha256(manifest), config, configDigest, layer, layerDigest);
        }
    }

    /// <summary>
    /// A registry and its token service (<c>/token</c>) as real ones behave. Every <c>/v2/</c> request needs
    /// <c>Bearer TOKEN</c>; without it the answer is 401 with a Bearer challenge. Private (credentials given): the token
    /// service hands the pull token only for those Basic credentials, refuses wrong ones (401) and gives anonymous
    /// callers a token without access (so the registry answers 401 again). Public (no credentials): anyone gets the
    /// pull token. Counts the blob bytes it sends on GETs.
    /// </summary>
    private sealed class FakeRegistry : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly TestImage _image;
        private readonly string? _basic;
        private readonly string _token = "pull-" + Guid.NewGuid().ToString("N");
        private readonly ConcurrentQueue<string> _log = new();
        private long _blobBytesSent;
        private int _blobGets;
        private bool _stopped;

        private FakeRegistry(WebApplication app, TestImage image, string? basic)
        {
            _app = app;
            _image = image;
            _basic = basic;
        }

        public int Port { get; private set; }
        public string Host => $"127.0.0.1:{Port}";
        /// <summary>Bytes of blob bodies written on GETs, whole or in part.</summary>
        public long BlobBytesSent => Interlocked.Read(ref _blobBytesSent);
        /// <summary>Blob GETs answered 200.</summary>
        public int BlobGets => Volatile.Read(ref _blobGets);
        /// <summary>"METHOD path (authorization kind) → status", in the order answered.</summary>
        public IReadOnlyList<string> Log => _log.ToArray();
        public override string ToString() => $"registry {Host}:\n  " + string.Join("\n  ", Log);

        public static async Task<FakeRegistry> StartAsync(TestImage image, (string User, string Password)? credentials)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
            var app = builder.Build();
            var fake = new FakeRegistry(app, image, credentials is { } c ? Basic(c.User, c.Password) : null);
            app.Run(fake.HandleAsync);
            await app.StartAsync(Ct);
            string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            fake.Port = new Uri(address).Port;
            return fake;
        }

        private string AuthKind(string? auth) => auth switch
        {
            null => "anonymous",
            _ when auth == "Bearer " + _token => "pull token",
            _ when auth.StartsWith("Bearer ", StringComparison.Ordinal) => "other token",
            _ when auth == _basic => "right credentials",
            _ when auth.StartsWith("Basic ", StringComparison.Ordinal) => "wrong credentials",
            _ => "?",
        };

        private async Task HandleAsync(HttpContext context)
        {
            var request = context.Request;
            var response = context.Response;
            string path = request.Path.Value ?? "";
            string? auth = request.Headers.Authorization.Count > 0 ? request.Headers.Authorization.ToString() : null;
            response.OnStarting(() =>
            {
                _log.Enqueue($"{request.Method} {path} ({AuthKind(auth)}) → {response.StatusCode}");
                return Task.CompletedTask;
            });
            if (path == "/token")
            {
                string token;
                if (_basic == null || auth == _basic) token = _token;
                else if (auth == null) token = "anonymous-" + Guid.NewGuid().ToString("N"); // a token, but without access
                else
                {
                    response.StatusCode = 401;
                    response.ContentType = "application/json";
                    await response.WriteAsync("{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"incorrect username or password\"}]}", Ct);
                    return;
                }
                response.ContentType = "application/json";
                await response.WriteAsync($"{{\"token\":\"{token}\",\"access_token\":\"{token}\",\"expires_in\":300}}", Ct);
                return;
            }
            response.Headers["Docker-Distribution-API-Version"] = "registry/2.0";
            if (auth != "Bearer " + _token)
            {
                response.StatusCode = 401;
                response.Headers.WWWAuthenticate = $"Bearer realm=\"http://{Host}/token\",service=\"fake-registry\",scope=\"repository:{Repository}:pull\""
                    + (auth != null ? ",error=\"insufficient_scope\"" : "");
                response.ContentType = "application/json";
                if (!HttpMethods.IsHead(request.Method))
                    await response.WriteAsync("{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}", Ct);
                return;
            }
            bool head = HttpMethods.IsHead(request.Method);
            if (path == "/v2/" && !head)
            {
                response.ContentType = "application/json";
                await response.WriteAsync("{}", Ct);
                return;
            }
            if (path == $"/v2/{Repository}/manifests/v1" || path == $"/v2/{Repository}/manifests/{_image.ManifestDigest}")
            {
                response.ContentType = "application/vnd.oci.image.manifest.v1+json";
                response.Headers["Docker-Content-Digest"] = _image.ManifestDigest;
                response.ContentLength = _image.Manifest.Length;
                if (!head) await response.Body.WriteAsync(_image.Manifest, Ct);
                return;
            }
            byte[]? blob = path == $"/v2/{Repository}/blobs/{_image.LayerDigest}" ? _image.Layer
                : path == $"/v2/{Repository}/blobs/{_image.ConfigDigest}" ? _image.Config : null;
            if (blob != null)
            {
                response.ContentType = "application/octet-stream";
                response.Headers["Docker-Content-Digest"] = Sha256(blob);
                response.ContentLength = blob.Length;
                if (head) return;
                Interlocked.Increment(ref _blobGets);
                for (int at = 0; at < blob.Length; at += 64 * 1024)
                {
                    int n = Math.Min(64 * 1024, blob.Length - at);
                    await response.Body.WriteAsync(blob.AsMemory(at, n), context.RequestAborted);
                    Interlocked.Add(ref _blobBytesSent, n);
                }
                return;
            }
            response.StatusCode = 404;
            response.ContentType = "application/json";
            if (!head) await response.WriteAsync("{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"unknown\"}]}", Ct);
        }

        /// <summary>Stops listening: connections to its port are refused from now on.</summary>
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

    /// <summary>A <c>swarm node</c> process with its registry mirror.</summary>
    private sealed class Node(string name, SwarmProcess process, int port, int mirrorPort) : IAsyncDisposable
    {
        public string Name => name;
        public SwarmProcess Process => process;
        public string Bootstrap => $"127.0.0.1:{port}";
        public string Mirror => $"http://127.0.0.1:{mirrorPort}";
        public string Stderr => process.Stderr;
        public override string ToString() => $"node {name}: {process}";
        public ValueTask DisposeAsync() => process.DisposeAsync();
    }

    /// <summary>
    /// Starts <c>swarm node</c> with the fake registry as its default upstream and, when given, a registries.json with
    /// credentials for it (none: the registry is used anonymously). Retries on other ports if the node exits at start.
    /// </summary>
    private static async Task<Node> StartNodeAsync(TempDirectory dir, string name, string upstream, string? bootstrap = null, (string User, string Password)? credentials = null)
    {
        string dataDir = dir.Combine(name);
        string[] extra = bootstrap != null ? ["--bootstrap", bootstrap] : [];
        if (credentials is { } c)
        {
            string config = dir.Combine(name + "-registries.json");
            File.WriteAllText(config, JsonSerializer.Serialize(new Dictionary<string, object>
            {
                [upstream] = new Dictionary<string, string> { ["username"] = c.User, ["password"] = c.Password },
            }));
            extra = [.. extra, "--registry-config", config];
        }
        for (int attempt = 0; ; attempt++)
        {
            int port = FreePort.Get(), mirror = FreePort.Get();
            var process = SwarmProcess.Start(["node", "--data-dir", dataDir, "--listen", $"127.0.0.1:{port}", "--mirror", $"127.0.0.1:{mirror}",
                "--metrics", "off", "--upstream", upstream, .. extra]);
            try
            {
                await Poll.UntilAsync(() => process.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || process.HasExited, Timeout, $"node {name} to start");
            }
            catch
            {
                await process.DisposeAsync();
                throw;
            }
            if (!process.HasExited) return new Node(name, process, port, mirror);
            string output = process.ToString();
            await process.DisposeAsync();
            if (attempt == 2) throw new InvalidOperationException($"node {name} exited at start: {output}");
        }
    }

    /// <summary>What a mirror answered.</summary>
    private sealed record Answer(HttpStatusCode Status, byte[] Body, string? Digest, long? Length, TimeSpan Took)
    {
        public string Text => Encoding.UTF8.GetString(Body.Length > 2000 ? Body[..2000] : Body);
        public override string ToString() => $"{(int)Status} {Status} after {Took.TotalSeconds:0.0} s, {Body.Length} bytes, digest {Digest}: {Text}";

        /// <summary>The code and message of an OCI error body.</summary>
        public (string Code, string Message) Error()
        {
            using var doc = JsonDocument.Parse(Body);
            var error = doc.RootElement.GetProperty("errors")[0];
            return (error.GetProperty("code").GetString()!, error.GetProperty("message").GetString()!);
        }
    }

    private static readonly HttpClient Http = new(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None, ConnectTimeout = TimeSpan.FromSeconds(5) })
    {
        Timeout = TimeSpan.FromSeconds(60),
    };

    private static async Task<Answer> AskAsync(Node node, HttpMethod method, string kind, string reference)
    {
        using var request = new HttpRequestMessage(method, $"{node.Mirror}/v2/{Repository}/{kind}/{reference}");
        if (kind == "manifests") request.Headers.Accept.ParseAdd("application/vnd.oci.image.manifest.v1+json");
        var clock = Stopwatch.StartNew();
        using var response = await Http.SendAsync(request, Ct);
        byte[] body = await response.Content.ReadAsByteArrayAsync(Ct);
        string? digest = response.Headers.TryGetValues("Docker-Content-Digest", out var d) ? d.FirstOrDefault() : null;
        return new Answer(response.StatusCode, body, digest, response.Content.Headers.ContentLength, clock.Elapsed);
    }

    private static async Task AssertServesAsync(Node node, string kind, string digest, byte[] expected)
    {
        var head = await AskAsync(node, HttpMethod.Head, kind, digest);
        Assert.True(head.Status == HttpStatusCode.OK, $"HEAD {kind}/{digest} at {node.Name}: {head}\n{node}");
        Assert.Equal(expected.Length, head.Length);
        var get = await AskAsync(node, HttpMethod.Get, kind, digest);
        Assert.True(get.Status == HttpStatusCode.OK, $"GET {kind}/{digest} at {node.Name}: {get}\n{node}");
        Assert.Equal(digest, get.Digest);
        Assert.True(expected.AsSpan().SequenceEqual(get.Body), $"GET {kind}/{digest} at {node.Name}: {get.Body.Length} bytes, not the {expected.Length} expected");
    }

    /// <summary>The mirror answers a quick 404 (GET with an OCI error, HEAD without a body) and does not hand out the content.</summary>
    private static async Task<(string Code, string Message)> AssertRefusesAsync(Node node, string kind, string digest, FakeRegistry registry)
    {
        var head = await AskAsync(node, HttpMethod.Head, kind, digest);
        Assert.True(head.Status == HttpStatusCode.NotFound, $"HEAD {kind}/{digest} at node {node.Name} must be 404: {head}\n{registry}\n{node}");
        Assert.Empty(head.Body);
        Assert.True(head.Took < Quick, $"HEAD {kind}/{digest} at node {node.Name}: {head}");
        var get = await AskAsync(node, HttpMethod.Get, kind, digest);
        Assert.True(get.Status == HttpStatusCode.NotFound, $"GET {kind}/{digest} at node {node.Name} must be 404: {get}\n{registry}\n{node}");
        Assert.True(get.Took < Quick, $"GET {kind}/{digest} at node {node.Name}: {get}");
        var error = get.Error();
        Assert.Equal(kind == "blobs" ? "BLOB_UNKNOWN" : "MANIFEST_UNKNOWN", error.Code);
        // The node neither fetched it (from the swarm or the upstream) nor keeps it.
        Assert.DoesNotContain($"mirror: {digest} (", node.Stderr, StringComparison.Ordinal);
        return error;
    }

    private static void AssertHealthy(params Node[] nodes)
    {
        foreach (var node in nodes)
        {
            Assert.False(node.Process.HasExited, node.ToString());
            Assert.DoesNotContain("Unhandled exception", node.Stderr, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("fail:", node.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("crit:", node.Stderr, StringComparison.Ordinal);
        }
    }

    private static Task WaitForLogAsync(Node node, string text) =>
        Poll.UntilAsync(() => node.Stderr.Contains(text, StringComparison.Ordinal), Timeout, $"node {node.Name} to log '{text}'");

    /// <summary>Node A (right credentials) pulls the image: the tag, the manifest by digest and the layer, each once from the upstream.</summary>
    private static async Task PullPrivatelyAsync(Node a, TestImage image, FakeRegistry registry)
    {
        var tag = await AskAsync(a, HttpMethod.Get, "manifests", "v1");
        Assert.True(tag.Status == HttpStatusCode.OK, $"A: GET manifests/v1: {tag}\n{registry}\n{a}");
        Assert.Equal(image.ManifestDigest, tag.Digest);
        Assert.Equal(image.Manifest, tag.Body);
        await AssertServesAsync(a, "manifests", image.ManifestDigest, image.Manifest);
        await AssertServesAsync(a, "blobs", image.LayerDigest, image.Layer);
        await WaitForLogAsync(a, $"mirror: {image.LayerDigest} ({image.Layer.Length} bytes) from the upstream");
        Assert.True(registry.BlobGets == 1 && registry.BlobBytesSent == image.Layer.Length, $"A's pull: {registry.BlobGets} blob GETs, {registry.BlobBytesSent} bytes\n{registry}");
    }

    [Fact]
    public async Task APrivateBlobInTheSwarmIsServedOnlyToNodesWhoseOwnCredentialsTheRegistryAccepts()
    {
        using var dir = new TempDirectory();
        var image = TestImage.Create(3 * MiB + 4321);
        await using var registry = await FakeRegistry.StartAsync(image, (User, Password));
        await using var a = await StartNodeAsync(dir, "A", registry.Host, credentials: (User, Password));
        await PullPrivatelyAsync(a, image, registry);

        // B has wrong credentials (its token request is refused), C none (its anonymous token has no access). The swarm
        // holds the manifest and the layer (at A), but neither node may read them at the registry: 404, not the bytes.
        await using var b = await StartNodeAsync(dir, "B", registry.Host, a.Bootstrap, credentials: (User, "wrong password"));
        await using var c = await StartNodeAsync(dir, "C", registry.Host, a.Bootstrap);
        int before = registry.Log.Count;
        foreach (var node in new[] { b, c })
        {
            await AssertRefusesAsync(node, "blobs", image.LayerDigest, registry);
            await AssertRefusesAsync(node, "manifests", image.ManifestDigest, registry);
        }
        // The registry was asked (B's token request refused, C's HEADs refused) and sent no blob beyond A's one fetch.
        var asked = registry.Log.Skip(before).ToList();
        Assert.Contains(asked, l => l.StartsWith("GET /token (wrong credentials) → 401", StringComparison.Ordinal));
        Assert.Contains(asked, l => l.StartsWith($"HEAD /v2/{Repository}/blobs/{image.LayerDigest} (other token) → 401", StringComparison.Ordinal));
        Assert.DoesNotContain(asked, l => l.EndsWith("→ 200", StringComparison.Ordinal) && !l.StartsWith("GET /token", StringComparison.Ordinal));
        Assert.True(registry.BlobGets == 1 && registry.BlobBytesSent == image.Layer.Length, $"after B and C: {registry.BlobGets} blob GETs, {registry.BlobBytesSent} bytes\n{registry}");

        // Control: a node with the right credentials is confirmed by a HEAD and gets the layer from the swarm (A), so the
        // 404s above were the rule at work, not a swarm that could not serve.
        await using var a2 = await StartNodeAsync(dir, "A2", registry.Host, a.Bootstrap, credentials: (User, Password));
        await AssertServesAsync(a2, "blobs", image.LayerDigest, image.Layer);
        await AssertServesAsync(a2, "manifests", image.ManifestDigest, image.Manifest);
        await WaitForLogAsync(a2, $"mirror: {image.LayerDigest} ({image.Layer.Length} bytes) from the swarm");
        Assert.True(registry.BlobGets == 1 && registry.BlobBytesSent == image.Layer.Length, $"after A2: {registry.BlobGets} blob GETs, {registry.BlobBytesSent} bytes\n{registry}");

        // B and C still refuse (their refusals are not cached as permissions).
        await AssertRefusesAsync(b, "blobs", image.LayerDigest, registry);
        await AssertRefusesAsync(c, "blobs", image.LayerDigest, registry);
        AssertHealthy(a, b, c, a2);
    }

    [Fact]
    public async Task WhileAPrivateRegistryIsDownNodesThatCannotConfirmAccessRefuseItsContentEvenWithTheRightCredentials()
    {
        using var dir = new TempDirectory();
        var image = TestImage.Create(2 * MiB + 77);
        await using var registry = await FakeRegistry.StartAsync(image, (User, Password));
        await using var a = await StartNodeAsync(dir, "A", registry.Host, credentials: (User, Password));
        await PullPrivatelyAsync(a, image, registry);
        var confirmed = Stopwatch.StartNew();

        await registry.StopAsync();
        // D has the right credentials, but the upstream cannot confirm them now: 404.
        await using var d = await StartNodeAsync(dir, "D", registry.Host, a.Bootstrap, credentials: (User, Password));
        // E has none: an anonymous node may serve from the swarm while the upstream is down, but A marked both digests
        // as fetched with credentials, so E refuses them too.
        await using var e = await StartNodeAsync(dir, "E", registry.Host, a.Bootstrap);
        foreach (var node in new[] { d, e })
        {
            foreach (var (kind, digest) in new[] { ("blobs", image.LayerDigest), ("manifests", image.ManifestDigest) })
            {
                var (_, message) = await AssertRefusesAsync(node, kind, digest, registry);
                // Refused for want of a confirmation, not because the swarm could not serve it.
                Assert.Contains("credentials", message, StringComparison.Ordinal);
            }
        }

        // A itself has credentials and the upstream is down, so it cannot confirm either: but the registry confirmed A's
        // access moments ago, and a node keeps a confirmation for a minute (UpstreamPermission.RefusalAsync), so A still
        // serves its own copy within that minute. (After it, A would answer 404 like D; this class does not wait a minute.)
        if (confirmed.Elapsed < TimeSpan.FromSeconds(50))
        {
            await AssertServesAsync(a, "blobs", image.LayerDigest, image.Layer);
            await AssertServesAsync(a, "manifests", image.ManifestDigest, image.Manifest);
        }
        Assert.True(registry.BlobGets == 1 && registry.BlobBytesSent == image.Layer.Length, registry.ToString());
        AssertHealthy(a, d, e);
    }

    [Fact]
    public async Task APublicImageIsServedFromTheSwarmToAnonymousNodesWhileItsRegistryIsDown()
    {
        using var dir = new TempDirectory();
        var image = TestImage.Create(3 * MiB + 99);
        // Public: anyone gets a pull token (as on Docker Hub); A pulls anonymously.
        await using var registry = await FakeRegistry.StartAsync(image, credentials: null);
        await using var a = await StartNodeAsync(dir, "A", registry.Host);
        await AssertServesAsync(a, "manifests", image.ManifestDigest, image.Manifest);
        await AssertServesAsync(a, "blobs", image.LayerDigest, image.Layer);
        await WaitForLogAsync(a, $"mirror: {image.LayerDigest} ({image.Layer.Length} bytes) from the upstream");
        Assert.True(registry.BlobGets == 1 && registry.BlobBytesSent == image.Layer.Length, registry.ToString());

        await registry.StopAsync();
        // C, anonymous, gets both from the swarm although the registry is unreachable.
        await using var c = await StartNodeAsync(dir, "C", registry.Host, a.Bootstrap);
        await AssertServesAsync(c, "blobs", image.LayerDigest, image.Layer);
        await AssertServesAsync(c, "manifests", image.ManifestDigest, image.Manifest);
        await WaitForLogAsync(c, $"mirror: {image.LayerDigest} ({image.Layer.Length} bytes) from the swarm");
        await WaitForLogAsync(c, $"mirror: {image.ManifestDigest} ({image.Manifest.Length} bytes) from the swarm");

        // A node with credentials configured for the registry refuses while it cannot confirm them, public image or not.
        await using var d = await StartNodeAsync(dir, "D", registry.Host, a.Bootstrap, credentials: (User, Password));
        await AssertRefusesAsync(d, "blobs", image.LayerDigest, registry);
        Assert.True(registry.BlobGets == 1 && registry.BlobBytesSent == image.Layer.Length, registry.ToString());
        AssertHealthy(a, c, d);
    }
}
