using System.Text.Json;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>
/// Container images end to end with real programs: Debian's docker-registry as the upstream, <c>swarm node</c> processes
/// with their registry mirrors, containerd pulling through them with hosts.toml written by <c>swarm containerd-config</c>,
/// skopeo copying through a mirror, and <c>swarm seed oci://</c> preheating an image.
/// </summary>
[Collection(DhtNetworkCollection.Name)]
public class ContainerImageTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);
    private const int MiB = 1024 * 1024;

    private sealed record Node(SwarmProcess Process, int Port, int MirrorPort)
    {
        public string Mirror => $"http://127.0.0.1:{MirrorPort}";
        public string Bootstrap => $"127.0.0.1:{Port}";
    }

    private static async Task<Node> StartNodeAsync(string dataDir, string upstream, string? bootstrap = null, int? metrics = null)
    {
        int port = FreePort.Get(), mirror = FreePort.Get();
        string[] args = ["node", "--data-dir", dataDir, "--listen", $"127.0.0.1:{port}", "--mirror", $"127.0.0.1:{mirror}", "--metrics", metrics is { } m ? $"127.0.0.1:{m}" : "off", "--upstream", upstream];
        if (bootstrap != null) args = [.. args, "--bootstrap", bootstrap];
        var process = SwarmProcess.Start(args);
        await Poll.UntilAsync(() => process.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || process.HasExited, Timeout, "the node to start");
        Assert.False(process.HasExited, process.ToString());
        return new Node(process, port, mirror);
    }

    /// <summary>containerd on this node pulls through it, with the hosts.toml that <c>swarm containerd-config --write</c> wrote.</summary>
    private static async Task<Containerd> ContainerdForAsync(Node node, string registry)
    {
        var containerd = await Containerd.StartAsync();
        await using var config = await SwarmProcess.RunAsync(Timeout, "containerd-config", "--registry", registry, "--mirror", node.Mirror, "--write", containerd.HostsDirectory);
        Assert.True(config.ExitCode == 0, config.ToString());
        string toml = File.ReadAllText(Path.Combine(containerd.HostsDirectory, registry, "hosts.toml"));
        Assert.Contains($"server = \"http://{registry}\"", toml, StringComparison.Ordinal);
        Assert.Contains($"[host.\"{node.Mirror}\"]", toml, StringComparison.Ordinal);
        return containerd;
    }

    private static void AssertNoCrash(SwarmProcess node)
    {
        Assert.DoesNotContain("Unhandled exception", node.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("fail:", node.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ContainerdOnASecondNodePullsTheImageFromTheSwarmAfterTheUpstreamStops()
    {
        using var dir = new TempDirectory();
        // 3 layers, 66 MiB in all.
        var image = OciImage.WriteLayout(dir.Combine("layout"), 81, 24 * MiB, 24 * MiB, 18 * MiB);
        Assert.True(image.TotalBytes >= 64 * MiB);
        await using var registry = await DockerRegistry.StartAsync();
        await Skopeo.PushLayoutAsync(image.LayoutDirectory, $"{registry.Host}/demo/app:v1");

        var a = await StartNodeAsync(dir.Combine("a"), registry.Host);
        await using var _a = a.Process;
        var b = await StartNodeAsync(dir.Combine("b"), registry.Host, a.Bootstrap);
        await using var _b = b.Process;
        await using var containerdA = await ContainerdForAsync(a, registry.Host);
        await using var containerdB = await ContainerdForAsync(b, registry.Host);

        // The first pull, by tag, through node A: the tag is resolved at the upstream, the blobs go into A's store.
        var pullA = await containerdA.PullAsync($"{registry.Host}/demo/app:v1", Timeout);
        Assert.True(pullA.Succeeded, pullA.ToString());
        foreach (var blob in image.Layers.Append(image.Config))
            await Poll.UntilAsync(() => a.Process.Stderr.Contains($"mirror: {blob.Digest} ", StringComparison.Ordinal), Timeout, $"node A to hold {blob.Digest}");

        await registry.StopAsync();

        // By tag, node B must not serve it: B never resolved the tag itself, and tags are never taken from peers.
        var byTag = await containerdB.PullAsync($"{registry.Host}/demo/app:v1", Timeout);
        Assert.False(byTag.Succeeded, byTag.ToString());

        // By digest, B pulls everything through the swarm.
        var pullB = await containerdB.PullAsync($"{registry.Host}/demo/app@{image.ManifestDigest}", Timeout);
        Assert.True(pullB.Succeeded, pullB.ToString() + "\nnode B: " + b.Process.Stderr);
        var held = await containerdB.ContentDigestsAsync();
        foreach (var blob in image.AllBlobs)
        {
            Assert.Contains(blob.Digest, held);
            Assert.Contains($"mirror: {blob.Digest} ({blob.Size} bytes) from the swarm", b.Process.Stderr, StringComparison.Ordinal);
        }
        // containerd verified every blob against its digest as it committed it; check the stored bytes once more.
        foreach (var layer in image.Layers)
        {
            var cat = await containerdB.CtrAsync(["content", "get", layer.Digest], Timeout);
            Assert.True(cat.Succeeded);
        }
        Assert.DoesNotContain("from the upstream", b.Process.Stderr, StringComparison.Ordinal);
        AssertNoCrash(a.Process);
        AssertNoCrash(b.Process);
    }

    [Fact]
    public async Task SkopeoCopyThroughTheMirrorGivesTheSameImageAsFromTheUpstream()
    {
        using var dir = new TempDirectory();
        var image = OciImage.WriteLayout(dir.Combine("layout"), 82, 3 * MiB, 2 * MiB, MiB + 17);
        await using var registry = await DockerRegistry.StartAsync();
        await Skopeo.PushLayoutAsync(image.LayoutDirectory, $"{registry.Host}/demo/app:v1");
        int metrics = FreePort.Get();
        var node = await StartNodeAsync(dir.Combine("n"), registry.Host, metrics: metrics);
        await using var _n = node.Process;

        // No ?ns= from skopeo: the node's --upstream is used.
        var viaMirror = await Skopeo.CopyAsync($"docker://127.0.0.1:{node.MirrorPort}/demo/app:v1", $"oci:{dir.Combine("via-mirror")}:v1", Timeout);
        Assert.True(viaMirror.Succeeded, viaMirror.ToString() + "\nnode: " + node.Process.Stderr);
        var direct = await Skopeo.CopyAsync($"docker://{registry.Host}/demo/app:v1", $"oci:{dir.Combine("direct")}:v1", Timeout);
        Assert.True(direct.Succeeded, direct.ToString());

        static string ManifestDigest(string layout) =>
            JsonDocument.Parse(File.ReadAllText(Path.Combine(layout, "index.json"))).RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!;
        Assert.Equal(image.ManifestDigest, ManifestDigest(dir.Combine("direct")));
        Assert.Equal(ManifestDigest(dir.Combine("direct")), ManifestDigest(dir.Combine("via-mirror")));
        var blobsDirect = Directory.GetFiles(Path.Combine(dir.Combine("direct"), "blobs", "sha256")).Select(Path.GetFileName).Order().ToList();
        var blobsMirror = Directory.GetFiles(Path.Combine(dir.Combine("via-mirror"), "blobs", "sha256")).Select(Path.GetFileName).Order().ToList();
        Assert.Equal(blobsDirect, blobsMirror);
        foreach (var blob in image.AllBlobs) Assert.Contains(blob.Hex, blobsMirror);
        // The node's metrics count the mirror's work.
        {
            var samples = await PrometheusText.ScrapeAsync(metrics);
            Assert.True(samples.Sum("swarm_mirror_requests_total", ("kind", "blob"), ("registry", registry.Host)) >= image.Layers.Count + 1);
            Assert.True(samples.Sum("swarm_mirror_requests_total", ("kind", "manifest"), ("registry", registry.Host), ("result", "upstream")) >= 1);
            Assert.True(samples.Sum("swarm_mirror_bytes_served_total") >= image.Layers.Sum(l => l.Size));
            // Every blob once from the upstream, and the manifest each time its tag was resolved (skopeo: once or twice).
            long blobs = image.Layers.Sum(l => l.Size) + image.Config.Size;
            Assert.InRange(samples.Sum("swarm_bytes_downloaded_total", ("source", "origin")), blobs + image.Manifest.Size, blobs + 2 * image.Manifest.Size);
        }
        // swarm ls shows which image blob each stored content is.
        await using var ls = await SwarmProcess.RunAsync(Timeout, "ls", "--json", "--data-dir", dir.Combine("n"));
        Assert.True(ls.ExitCode == 0, ls.ToString());
        var listed = JsonDocument.Parse(ls.Stdout).RootElement.GetProperty("content").EnumerateArray()
            .Select(c => c.TryGetProperty("digest", out var d) ? d.GetString() : null).ToList();
        foreach (var blob in image.AllBlobs) Assert.Contains(blob.Digest, listed);
        foreach (var name in blobsMirror)
            Assert.Equal(File.ReadAllBytes(Path.Combine(dir.Combine("direct"), "blobs", "sha256", name!)),
                File.ReadAllBytes(Path.Combine(dir.Combine("via-mirror"), "blobs", "sha256", name!)));
        AssertNoCrash(node.Process);
    }

    [Fact]
    public async Task SeedOciPreheatsSoNodesPullByDigestWithTheUpstreamDown()
    {
        using var dir = new TempDirectory();
        var image = OciImage.WriteLayout(dir.Combine("layout"), 83, 6 * MiB, 4 * MiB, 2 * MiB);
        await using var registry = await DockerRegistry.StartAsync();
        await Skopeo.PushLayoutAsync(image.LayoutDirectory, $"{registry.Host}/demo/app:v1");

        int seedPort = FreePort.Get();
        await using var seed = SwarmProcess.Start("seed", $"oci://{registry.Host}/demo/app:v1", "--data-dir", dir.Combine("seed"), "--listen", $"127.0.0.1:{seedPort}");
        string digest = await seed.WaitForStdoutLineAsync(l => l.StartsWith("sha256:", StringComparison.Ordinal), Timeout);
        Assert.Equal(image.ManifestDigest, digest.Trim());
        Assert.Contains($"{image.AllBlobs.Count() - 1} blob(s)", seed.Stderr, StringComparison.Ordinal);

        await registry.StopAsync();

        const int N = 3;
        var nodes = new List<Node>();
        var containerds = new List<Containerd>();
        try
        {
            for (int i = 0; i < N; i++)
            {
                nodes.Add(await StartNodeAsync(dir.Combine($"n{i}"), registry.Host, $"127.0.0.1:{seedPort}"));
                containerds.Add(await ContainerdForAsync(nodes[i], registry.Host));
            }
            var pulls = await Task.WhenAll(containerds.Select(c => c.PullAsync($"{registry.Host}/demo/app@{image.ManifestDigest}", Timeout)));
            for (int i = 0; i < N; i++)
            {
                Assert.True(pulls[i].Succeeded, pulls[i].ToString() + "\nnode: " + nodes[i].Process.Stderr);
                var held = await containerds[i].ContentDigestsAsync();
                foreach (var blob in image.AllBlobs) Assert.Contains(blob.Digest, held);
                AssertNoCrash(nodes[i].Process);
            }
        }
        finally
        {
            foreach (var c in containerds) await c.DisposeAsync();
            foreach (var n in nodes) await n.Process.DisposeAsync();
        }
    }

    [Fact]
    public async Task ContainerdConfigPrintsAHostsTomlAndRejectsBadInput()
    {
        await using var printed = await SwarmProcess.RunAsync(Timeout, "containerd-config", "--registry", "docker.io");
        Assert.True(printed.ExitCode == 0, printed.ToString());
        Assert.Contains("server = \"https://registry-1.docker.io\"", printed.Stdout, StringComparison.Ordinal);
        Assert.Contains("[host.\"http://127.0.0.1:7401\"]", printed.Stdout, StringComparison.Ordinal);
        Assert.Contains("capabilities = [\"pull\", \"resolve\"]", printed.Stdout, StringComparison.Ordinal);
        Assert.Contains("dial_timeout = \"200ms\"", printed.Stdout, StringComparison.Ordinal);

        await using var bad = await SwarmProcess.RunAsync(Timeout, "containerd-config", "--registry", "not/a/host");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("is not a registry host", bad.Stderr, StringComparison.Ordinal);
        await using var badMirror = await SwarmProcess.RunAsync(Timeout, "containerd-config", "--registry", "ghcr.io", "--mirror", "ftp://x");
        Assert.Equal(1, badMirror.ExitCode);
        Assert.Contains("--mirror", badMirror.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ContainerdConfigRemoveDeletesOnlyTheFilesItWrote()
    {
        using var dir = new TempDirectory();
        string certs = dir.Combine("certs.d");
        await using (var write = await SwarmProcess.RunAsync(Timeout, "containerd-config", "--registry", "docker.io", "--registry", "ghcr.io", "--write", certs))
            Assert.True(write.ExitCode == 0, write.ToString());
        // An operator's own file for another registry, and one of ours that the operator replaced.
        Directory.CreateDirectory(Path.Combine(certs, "quay.io"));
        File.WriteAllText(Path.Combine(certs, "quay.io", "hosts.toml"), "server = \"https://quay.io\"\n");
        File.WriteAllText(Path.Combine(certs, "ghcr.io", "hosts.toml"), "# mine\nserver = \"https://ghcr.io\"\n");

        await using var remove = await SwarmProcess.RunAsync(Timeout, "containerd-config", "--remove", "--registry", "docker.io", "--registry", "ghcr.io",
            "--registry", "quay.io", "--registry", "registry.k8s.io", "--write", certs);
        Assert.True(remove.ExitCode == 0, remove.ToString());
        Assert.False(Directory.Exists(Path.Combine(certs, "docker.io")), remove.ToString()); // ours: gone, with its empty directory
        Assert.True(File.Exists(Path.Combine(certs, "ghcr.io", "hosts.toml")), remove.ToString());
        Assert.True(File.Exists(Path.Combine(certs, "quay.io", "hosts.toml")), remove.ToString());
        Assert.Contains("left", remove.Stderr, StringComparison.Ordinal);

        await using var noDir = await SwarmProcess.RunAsync(Timeout, "containerd-config", "--remove", "--registry", "docker.io");
        Assert.Equal(1, noDir.ExitCode);
        Assert.Contains("--remove needs --write", noDir.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ABlobStreamsToTheClientWhileTheUpstreamIsStillSendingIt()
    {
        using var dir = new TempDirectory();
        var blob = new byte[8 * MiB];
        new Random(84).NextBytes(blob);
        string digest = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(blob));
        // A slow upstream: 64 KiB every 15 ms, about 4 MB/s, so the blob takes about 2 s to send.
        await using var upstream = new CountingOrigin { ChunkDelay = TimeSpan.FromMilliseconds(15) };
        upstream.Serve($"/v2/demo/app/blobs/{digest}", blob);
        string host = $"127.0.0.1:{upstream.Port}";
        var node = await StartNodeAsync(dir.Combine("n"), host);
        await using var _n = node.Process;

        using var http = new HttpClient { Timeout = Timeout };
        using var response = await http.GetAsync($"{node.Mirror}/v2/demo/app/blobs/{digest}?ns={host}", HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(blob.Length, response.Content.Headers.ContentLength);
        await using var body = await response.Content.ReadAsStreamAsync(TestContext.Current.CancellationToken);
        var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        long upstreamSentAtFirstMiB = -1;
        int n;
        while ((n = await body.ReadAsync(buffer, TestContext.Current.CancellationToken)) > 0)
        {
            received.Write(buffer, 0, n);
            if (upstreamSentAtFirstMiB < 0 && received.Length >= MiB) upstreamSentAtFirstMiB = upstream.BytesSent;
        }
        Assert.Equal(blob, received.ToArray());
        // The first MiB reached the client while most of the blob was still on its way from the upstream.
        Assert.InRange(upstreamSentAtFirstMiB, MiB, blob.Length / 2);
        AssertNoCrash(node.Process);
    }

    [Fact]
    public async Task TwoMirrorsAskingForALayerAtOnceGetItFromTheUpstreamOnce()
    {
        using var dir = new TempDirectory();
        var blob = new byte[8 * MiB + 3];
        new Random(86).NextBytes(blob);
        string digest = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(blob));
        await using var upstream = new CountingOrigin { ChunkDelay = TimeSpan.FromMilliseconds(10) }; // about 6 MB/s
        upstream.Serve($"/v2/demo/app/blobs/{digest}", blob);
        string host = $"127.0.0.1:{upstream.Port}";
        var a = await StartNodeAsync(dir.Combine("a"), host);
        await using var _a = a.Process;
        var b = await StartNodeAsync(dir.Combine("b"), host, a.Bootstrap);
        await using var _b = b.Process;

        using var http = new HttpClient { Timeout = Timeout };
        var bodies = await Task.WhenAll(new[] { a, b }.Select(n => http.GetByteArrayAsync($"{n.Mirror}/v2/demo/app/blobs/{digest}?ns={host}", TestContext.Current.CancellationToken)));
        Assert.Equal(blob, bodies[0]);
        Assert.Equal(blob, bodies[1]);
        // One of them read the upstream (the lease); the other fetched from it as it read. HEADs carry no body.
        Assert.InRange(upstream.BytesSent, blob.Length, blob.Length + blob.Length / 4);

        // Both keep the blob as an ordinary (sealed) entry, known by its digest.
        foreach (var node in new[] { a, b })
        {
            string data = node == a ? dir.Combine("a") : dir.Combine("b");
            await Poll.UntilAsync(async () =>
            {
                await using var ls = await SwarmProcess.RunAsync(Timeout, "ls", "--json", "--data-dir", data);
                return JsonDocument.Parse(ls.Stdout).RootElement.GetProperty("content").EnumerateArray()
                    .Any(c => c.TryGetProperty("digest", out var d) && d.GetString() == digest && !c.GetProperty("live").GetBoolean() && c.GetProperty("complete").GetBoolean());
            }, Timeout, "the blob to be listed as sealed content with its digest");
            AssertNoCrash(node.Process);
        }
    }
}
