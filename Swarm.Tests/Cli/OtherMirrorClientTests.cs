using System.Globalization;
using System.Text.Json.Nodes;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>
/// The registry mirror's other clients with the real programs: podman with the registries.conf drop-in that
/// <c>swarm podman-config</c> wrote, and dockerd with the daemon.json that <c>swarm docker-config</c> wrote, each pulling
/// an image of the node's upstream (Debian's docker-registry) through the node; the node's metrics prove the mirror
/// served it. Also the commands' refusals.
/// </summary>
[Collection(DhtNetworkCollection.Name)]
public class OtherMirrorClientTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);
    private const int MiB = 1024 * 1024;

    private sealed record Node(SwarmProcess Process, int MirrorPort, int MetricsPort)
    {
        public string Mirror => $"http://127.0.0.1:{MirrorPort}";
    }

    private static async Task<Node> StartNodeAsync(string dataDir, string upstream)
    {
        int port = FreePort.Get(), mirror = FreePort.Get(), metrics = FreePort.Get();
        var process = SwarmProcess.Start("node", "--data-dir", dataDir, "--listen", $"127.0.0.1:{port}", "--mirror", $"127.0.0.1:{mirror}",
            "--metrics", $"127.0.0.1:{metrics}", "--upstream", upstream);
        await Poll.UntilAsync(() => process.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || process.HasExited, Timeout, "the node to start");
        Assert.False(process.HasExited, process.ToString());
        return new Node(process, mirror, metrics);
    }

    private static Task<PrometheusText> MetricsAsync(Node node) => PrometheusText.ScrapeAsync(node.MetricsPort);

    /// <summary>Every blob came to the client through the mirror, and from the upstream once (the manifest at most twice).</summary>
    private static async Task AssertServedByTheMirrorAsync(Node node, OciImageInfo image)
    {
        var samples = await MetricsAsync(node);
        string all = samples.Text;
        Assert.True(samples.Sum("swarm_mirror_requests_total", ("kind", "manifest")) >= 1, all);
        Assert.True(samples.Sum("swarm_mirror_requests_total", ("kind", "blob")) >= image.Layers.Count + 1, all);
        long blobs = image.Layers.Sum(l => l.Size) + image.Config.Size;
        Assert.True(samples.Sum("swarm_mirror_bytes_served_total") >= blobs, all);
        Assert.InRange(samples.Sum("swarm_bytes_downloaded_total", ("source", "origin")), blobs + image.Manifest.Size, blobs + 2 * image.Manifest.Size);
        foreach (var blob in image.Layers.Append(image.Config))
            Assert.Contains($"mirror: {blob.Digest} ", node.Process.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", node.Process.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PodmanPullsTheUpstreamsImageThroughTheMirrorWithTheGeneratedDropIn()
    {
        using var dir = new TempDirectory();
        var image = OciImage.WriteLayout(dir.Combine("layout"), 91, 3 * MiB, 2 * MiB, MiB + 7);
        await using var registry = await DockerRegistry.StartAsync();
        await Skopeo.PushLayoutAsync(image.LayoutDirectory, $"{registry.Host}/demo/app:v1");
        var node = await StartNodeAsync(dir.Combine("n"), registry.Host);
        await using var _n = node.Process;

        string dropIn = dir.Combine("registries.conf.d", "50-swarm.conf");
        await using (var config = await SwarmProcess.RunAsync(Timeout, "podman-config", "--registry", registry.Host, "--mirror", node.Mirror, "--write", dropIn))
        {
            Assert.True(config.ExitCode == 0, config.ToString());
            Assert.Contains("--upstream", config.Stderr, StringComparison.Ordinal);
        }
        string toml = File.ReadAllText(dropIn);
        Assert.Contains($"prefix = \"{registry.Host}\"", toml, StringComparison.Ordinal);
        Assert.Contains($"[[registry.mirror]]\nlocation = \"127.0.0.1:{node.MirrorPort}\"\ninsecure = true", toml, StringComparison.Ordinal);

        using var podman = new Podman(dropIn);
        var pull = await podman.PullAsync($"{registry.Host}/demo/app:v1", Timeout);
        Assert.True(pull.Succeeded, pull.ToString() + "\nnode: " + node.Process.Stderr);
        var digest = await podman.RunAsync(Timeout, "image", "inspect", "--format", "{{.Digest}}", $"{registry.Host}/demo/app:v1");
        Assert.True(digest.Succeeded, digest.ToString());
        Assert.Equal(image.ManifestDigest, digest.Stdout.Trim());
        await AssertServedByTheMirrorAsync(node, image);
    }

    [Fact]
    public async Task DockerdPullsADockerIoNameThroughTheMirrorWithTheGeneratedDaemonJson()
    {
        using var dir = new TempDirectory();
        var image = OciImage.WriteLayout(dir.Combine("layout"), 92, 3 * MiB, MiB + 11);
        // Docker sends only docker.io names to a mirror; the node, with no ?ns= in the request, asks its --upstream: the local
        // registry, which holds the image under docker.io's path for it (library/NAME).
        await using var registry = await DockerRegistry.StartAsync();
        await Skopeo.PushLayoutAsync(image.LayoutDirectory, $"{registry.Host}/library/swarmtest:v1");
        var node = await StartNodeAsync(dir.Combine("n"), registry.Host);
        await using var _n = node.Process;

        // An operator's daemon.json with keys of its own: the merge keeps them.
        string daemonJson = dir.Combine("daemon.json");
        File.WriteAllText(daemonJson, "{\"log-level\": \"info\", \"registry-mirrors\": [], \"features\": {\"buildkit\": false}}");
        await using (var config = await SwarmProcess.RunAsync(Timeout, "docker-config", "--mirror", node.Mirror, "--write", daemonJson))
        {
            Assert.True(config.ExitCode == 0, config.ToString());
            Assert.Contains("docker.io images only", config.Stderr, StringComparison.Ordinal);
        }
        var written = JsonNode.Parse(File.ReadAllText(daemonJson))!.AsObject();
        Assert.Equal("info", (string?)written["log-level"]);
        Assert.False((bool)written["features"]!["buildkit"]!);
        Assert.Equal([node.Mirror], written["registry-mirrors"]!.AsArray().Select(m => (string?)m));

        await using var dockerd = await Dockerd.StartAsync(daemonJson, Timeout);
        var pull = await dockerd.DockerAsync(Timeout, "pull", "library/swarmtest:v1");
        Assert.True(pull.Succeeded, pull.ToString() + "\ndockerd: " + dockerd.Output + "\nnode: " + node.Process.Stderr);
        Assert.Contains(image.ManifestDigest, pull.Stdout, StringComparison.Ordinal);
        var inspect = await dockerd.DockerAsync(Timeout, "image", "inspect", "--format", "{{index .RepoDigests 0}}", "swarmtest:v1");
        Assert.True(inspect.Succeeded, inspect.ToString());
        Assert.Equal($"swarmtest@{image.ManifestDigest}", inspect.Stdout.Trim());
        // dockerd never went past the mirror: a fallback would have looked up registry-1.docker.io (and failed, by design).
        Assert.DoesNotContain("registry-1.docker.io", dockerd.Output, StringComparison.Ordinal);
        await AssertServedByTheMirrorAsync(node, image);
    }

    [Fact]
    public async Task PodmanConfigRefusesASecondRegistryAndAForeignFile()
    {
        using var dir = new TempDirectory();
        await using var printed = await SwarmProcess.RunAsync(Timeout, "podman-config", "--registry", "docker.io");
        Assert.True(printed.ExitCode == 0, printed.ToString());
        Assert.Contains("[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n\n[[registry.mirror]]\nlocation = \"127.0.0.1:7401\"\ninsecure = true\n", printed.Stdout, StringComparison.Ordinal);

        await using var two = await SwarmProcess.RunAsync(Timeout, "podman-config", "--registry", "docker.io", "--registry", "ghcr.io");
        Assert.Equal(1, two.ExitCode);
        Assert.Contains("one --registry only", two.Stderr, StringComparison.Ordinal);
        Assert.Empty(two.Stdout);

        string mine = dir.Combine("50-mine.conf");
        File.WriteAllText(mine, "[[registry]]\nprefix = \"quay.io\"\n");
        await using var foreign = await SwarmProcess.RunAsync(Timeout, "podman-config", "--registry", "docker.io", "--write", mine);
        Assert.Equal(1, foreign.ExitCode);
        Assert.Contains("did not write it", foreign.Stderr, StringComparison.Ordinal);
        Assert.Equal("[[registry]]\nprefix = \"quay.io\"\n", File.ReadAllText(mine));

        await using var badMirror = await SwarmProcess.RunAsync(Timeout, "podman-config", "--registry", "docker.io", "--mirror", "ftp://x");
        Assert.Equal(1, badMirror.ExitCode);
        Assert.Contains("--mirror", badMirror.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DockerConfigPrintsTheFragmentAndRefusesADaemonJsonThatIsNotAnObject()
    {
        using var dir = new TempDirectory();
        await using var printed = await SwarmProcess.RunAsync(Timeout, "docker-config");
        Assert.True(printed.ExitCode == 0, printed.ToString());
        Assert.Equal(["http://127.0.0.1:7401"], JsonNode.Parse(printed.Stdout)!["registry-mirrors"]!.AsArray().Select(m => (string?)m));

        foreach (var (name, text, message) in new[]
        {
            ("array.json", "[\"http://127.0.0.1:7401\"]", "is not a JSON object"),
            ("broken.json", "{\"log-level\": ", "is not valid JSON"),
            ("mirrors.json", "{\"registry-mirrors\": \"http://x\"}", "is not a list"),
        })
        {
            string file = dir.Combine(name);
            File.WriteAllText(file, text);
            await using var refused = await SwarmProcess.RunAsync(Timeout, "docker-config", "--write", file);
            Assert.Equal(1, refused.ExitCode);
            Assert.Contains(message, refused.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("Exception", refused.Stderr, StringComparison.Ordinal);
            Assert.Equal(text, File.ReadAllText(file));
        }

        // A second merge keeps one entry for the node, first, and the operator's other mirror after it.
        string merged = dir.Combine("daemon.json");
        File.WriteAllText(merged, "{\"registry-mirrors\": [\"https://mirror.example.com\", \"http://127.0.0.1:7401/\"]}");
        await using (var write = await SwarmProcess.RunAsync(Timeout, "docker-config", "--write", merged)) Assert.True(write.ExitCode == 0, write.ToString());
        Assert.Equal(["http://127.0.0.1:7401", "https://mirror.example.com"], JsonNode.Parse(File.ReadAllText(merged))!["registry-mirrors"]!.AsArray().Select(m => (string?)m));
    }
}
