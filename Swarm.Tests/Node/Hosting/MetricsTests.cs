using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Hosting;

/// <summary>
/// <c>/metrics</c> of a real <c>swarm node</c> as Prometheus scrapes it: checked by Debian's <c>promtool check metrics</c>
/// while a download from a peer moves data, then after that download, an origin fetch and mirror requests against a real
/// registry (docker-registry): the histograms, counters and labels are there with the counts the work gave them, labels
/// hold only fixed values, the origin and the registry saw Swarm's User-Agent, and every metric the Grafana dashboard in
/// deploy/ asks for exists.
/// </summary>
[Collection(DhtNetworkCollection.Name)]
public partial class MetricsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(120);
    private const int MiB = 1024 * 1024;

    private static async Task<SwarmProcess> StartNodeAsync(params string[] args)
    {
        var node = SwarmProcess.Start(["node", .. args]);
        await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
        Assert.False(node.HasExited, node.ToString());
        return node;
    }

    /// <summary>Runs <c>promtool check metrics</c> on a scrape; returns its exit code and everything it printed.</summary>
    private static async Task<(int ExitCode, string Output)> PromtoolAsync(string scrape)
    {
        string promtool = (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "promtool")).FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException("'promtool' is not installed: .ci/run installs it (apt-get install -y --no-install-recommends prometheus)");
        var psi = new ProcessStartInfo(promtool) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("check");
        psi.ArgumentList.Add("metrics");
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await process.StandardInput.WriteAsync(scrape);
        process.StandardInput.Close();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(cts.Token);
        return (process.ExitCode, (await stdout) + (await stderr));
    }

    private static async Task AssertPromtoolPassesAsync(PrometheusText scrape, string when)
    {
        var (exit, output) = await PromtoolAsync(scrape.Text);
        Assert.True(exit == 0 && output.Trim().Length == 0, $"promtool check metrics {when}: exit {exit}\n{output}\n--- scrape:\n{scrape.Text}");
    }

    [Fact]
    public async Task MetricsPassPromtoolDuringATransferAndCountWhatTheNodeDid()
    {
        using var dir = new TempDirectory();
        // The upstream registry, with a small image in it.
        var image = OciImage.WriteLayout(dir.Combine("layout"), 91, MiB + 5, 300_000);
        await using var registry = await DockerRegistry.StartAsync();
        await Skopeo.PushLayoutAsync(image.LayoutDirectory, $"{registry.Host}/demo/app:v1");
        await using var origin = new CountingOrigin();
        var small = new byte[MiB + 3];
        new Random(92).NextBytes(small);
        origin.Serve("/small.bin", small);

        // A seed holding 24 MiB, and the node under test fetching it at 6 MiB/s: about 4 s of transfer to scrape during.
        int seedPort = FreePort.Get(), port = FreePort.Get(), metrics = FreePort.Get(), mirror = FreePort.Get();
        string file = dir.WriteRandomFile("big.bin", 24 * MiB, seed: 93);
        await using var seed = SwarmProcess.Start("seed", file, "--data-dir", dir.Combine("seed"), "--listen", $"127.0.0.1:{seedPort}");
        string id = await seed.WaitForStdoutLineAsync(l => l.StartsWith("swarm://", StringComparison.Ordinal), Timeout);
        await using var node = await StartNodeAsync("--data-dir", dir.Combine("node"), "--listen", $"127.0.0.1:{port}", "--bootstrap", $"127.0.0.1:{seedPort}",
            "--metrics", $"127.0.0.1:{metrics}", "--mirror", $"127.0.0.1:{mirror}", "--upstream", registry.Host, "--download-rate", "6MiB/s");

        await AssertPromtoolPassesAsync(await PrometheusText.ScrapeAsync(metrics), "on a node that has done nothing yet");
        // The CLI gives a node 5 s to answer /healthz before it runs a command itself; a node's first answer (compiled as it
        // runs) can take longer on a busy machine, so it answers once here, with time to spare.
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) })
            Assert.Equal("ok\n", await http.GetStringAsync($"http://127.0.0.1:{metrics}/healthz", TestContext.Current.CancellationToken));

        // A URL through the node: the origin sees Swarm's User-Agent.
        await using (var get = await SwarmProcess.RunAsync(Timeout, "get", origin.Url("/small.bin"), "-o", dir.Combine("small.bin"), "--data-dir", dir.Combine("node")))
        {
            Assert.True(get.ExitCode == 0, get.ToString());
            Assert.Contains("handing this to the node", get.Stderr, StringComparison.Ordinal);
        }
        Assert.NotEmpty(origin.UserAgents);
        Assert.All(origin.UserAgents, agent => Assert.Equal(Swarm.Core.Telemetry.UserAgent, agent));
        Assert.Matches(@"^swarm/\d+\.\d+\.\d+", Swarm.Core.Telemetry.UserAgent);

        // The download from the peer, scraped while its bytes arrive.
        await using var download = SwarmProcess.Start("get", id, "-o", dir.Combine("big.out"), "--data-dir", dir.Combine("node"));
        PrometheusText? during = null;
        await Poll.UntilAsync(async () =>
        {
            Assert.False(download.HasExited && download.ExitCode != 0, download.ToString());
            var scrape = await PrometheusText.ScrapeAsync(metrics);
            double fromPeers = scrape.Sum("swarm_bytes_downloaded_total", ("source", "peer"));
            if (scrape.Sum("swarm_tasks", ("state", "running")) != 1 || fromPeers <= 0 || fromPeers >= 20 * MiB) return false;
            during = scrape;
            return true;
        }, Timeout, "a scrape while the download from the peer is under way");
        await AssertPromtoolPassesAsync(during!, "during the transfer");
        await download.WaitForExitAsync(Timeout);
        Assert.True(download.ExitCode == 0, download.ToString());
        Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(dir.Combine("big.out")));

        // Mirror requests: a manifest by tag and each blob from the upstream, a blob again (now from this node), a blob the
        // upstream does not have (a miss), and one for a registry that is not configured (its label is "other").
        using (var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{mirror}") })
        {
            var ct = TestContext.Current.CancellationToken;
            using var manifest = new HttpRequestMessage(HttpMethod.Get, "/v2/demo/app/manifests/v1");
            manifest.Headers.Accept.ParseAdd(OciImage.ManifestType);
            using (var answer = await http.SendAsync(manifest, ct)) Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            foreach (var blob in image.Layers.Prepend(image.Config))
                Assert.Equal(image.Read(blob), await http.GetByteArrayAsync($"/v2/demo/app/blobs/{blob.Digest}", ct));
            Assert.Equal(image.Read(image.Layers[0]), await http.GetByteArrayAsync($"/v2/demo/app/blobs/{image.Layers[0].Digest}", ct));
            string absent = "sha256:" + new string('0', 64);
            using (var missing = await http.GetAsync($"/v2/demo/app/blobs/{absent}", ct)) Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            using (var elsewhere = await http.GetAsync($"/v2/demo/app/blobs/{absent}?ns=127.0.0.1:1", ct)) Assert.Equal(HttpStatusCode.NotFound, elsewhere.StatusCode);
        }

        var after = await PrometheusText.ScrapeAsync(metrics);
        await AssertPromtoolPassesAsync(after, "after the transfers and mirror requests");
        string upstream = registry.Host;
        (string, string) Blob = ("kind", "blob"), Manifest = ("kind", "manifest"), Registry = ("registry", upstream);
        // Counters and histograms with the counts the work gave them.
        Assert.Equal(2, after.Sum("swarm_tasks_finished_total", ("kind", "get"), ("outcome", "done"))); // the URL get and the peer download
        Assert.Equal(2, after.Sum("swarm_task_duration_seconds_count", ("kind", "get"), ("outcome", "done")));
        Assert.Equal(2, after.Sum("swarm_task_duration_seconds_bucket", ("kind", "get"), ("outcome", "done"), ("le", "+Inf")));
        Assert.True(after.Sum("swarm_piece_verification_duration_seconds_count", ("result", "verified")) >= 96, "every piece of the 24 MiB download was timed");
        Assert.True(after.Contains("swarm_piece_verification_duration_seconds_bucket", ("result", "verified"), ("le", "0.001")));
        Assert.True(after.Sum("swarm_dht_lookup_duration_seconds_count", ("kind", "get_providers")) >= 1);
        Assert.True(after.Sum("swarm_dht_lookup_duration_seconds_count", ("kind", "find_node")) >= 1, "the join through the bootstrap node");
        Assert.Equal(1, after.Sum("swarm_mirror_requests_total", Manifest, Registry, ("result", "upstream")));
        Assert.Equal(1 + image.Layers.Count, after.Sum("swarm_mirror_requests_total", Blob, Registry, ("result", "upstream")));
        Assert.Equal(1, after.Sum("swarm_mirror_requests_total", Blob, Registry, ("result", "swarm")));
        Assert.Equal(1, after.Sum("swarm_mirror_requests_total", Blob, Registry, ("result", "miss")));
        Assert.Equal(1, after.Sum("swarm_mirror_requests_total", Blob, ("registry", "other"), ("result", "miss")));
        foreach (var histogram in new[] { "swarm_mirror_request_duration_seconds", "swarm_mirror_first_byte_seconds" })
        {
            Assert.Equal(1 + image.Layers.Count, after.Sum(histogram + "_bucket", Blob, Registry, ("result", "upstream"), ("le", "+Inf")));
            Assert.Equal(1, after.Sum(histogram + "_count", Manifest, Registry, ("result", "upstream")));
            Assert.Equal(1, after.Sum(histogram + "_count", Blob, Registry, ("result", "swarm")));
            Assert.True(after.Sum(histogram + "_sum", Blob, Registry, ("result", "upstream")) > 0);
        }
        Assert.Equal(small.Length + image.TotalBytes, after.Sum("swarm_bytes_downloaded_total", ("source", "origin"))); // the URL, the manifest and the blobs
        Assert.True(after.Sum("swarm_bytes_downloaded_total", ("source", "peer")) >= 24 * MiB);
        Assert.True(after.Sum("swarm_dht_rpcs_sent_total") >= after.Sum("swarm_dht_rpc_results_total"), "answered and timed out are parts of sent, in their own metric");
        Assert.True(after.Sum("swarm_dht_rpc_results_total", ("outcome", "answered")) > 0);
        Assert.Equal(6 * MiB, after.Sum("swarm_download_rate_limit_bytes_per_second"));
        // Process, runtime, build and disk.
        foreach (var name in new[] { "process_cpu_seconds_total", "process_start_time_seconds", "process_open_fds", "process_max_fds", "process_resident_memory_bytes",
            "process_virtual_memory_bytes", "dotnet_gc_heap_bytes", "swarm_data_dir_free_bytes" })
            Assert.True(after.Sum(name) > 0, name);
        Assert.InRange(after.Sum("process_start_time_seconds"), DateTimeOffset.UtcNow.AddMinutes(-10).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        var build = Assert.Single(after.Samples, s => s.Name == "swarm_build_info");
        Assert.Equal((1.0, Swarm.Core.Telemetry.Version), (build.Value, build.Labels["version"]));
        // Labels take fixed values: no digest, URL or peer address in any of them.
        foreach (var sample in after.Samples)
            foreach (var (label, value) in sample.Labels)
                Assert.False(value.Contains("sha256", StringComparison.Ordinal) || value.Contains('/', StringComparison.Ordinal)
                    || value.Contains($":{seedPort}", StringComparison.Ordinal) || value.Contains($":{port}", StringComparison.Ordinal),
                    $"{sample.Name} has {label}=\"{value}\"");

        // The registry saw Swarm's User-Agent on the mirror's requests (its access log: "GET /v2/... HTTP/1.1" 200 N "" "AGENT").
        var mirrorLines = registry.Output.Split('\n').Where(l => l.Contains($"\"{Swarm.Core.Telemetry.UserAgent}\"", StringComparison.Ordinal)).ToList();
        Assert.Contains(mirrorLines, l => l.Contains("\"GET /v2/demo/app/manifests/v1 ", StringComparison.Ordinal));
        Assert.Contains(mirrorLines, l => l.Contains($"/v2/demo/app/blobs/{image.Layers[0].Digest}", StringComparison.Ordinal));

        AssertDashboardAsksOnlyFor(after);
        Assert.DoesNotContain("Unhandled exception", node.Stderr, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"\b(?:swarm|process|dotnet)_[a-z0-9_]+\b")]
    private static partial Regex MetricName();

    /// <summary>deploy/grafana-dashboard.json is valid JSON whose every PromQL expression names only metrics the scrape has.</summary>
    private static void AssertDashboardAsksOnlyFor(PrometheusText scrape)
    {
        string root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Swarm.sln"))) root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("no Swarm.sln above the tests");
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "deploy", "grafana-dashboard.json")));
        var expressions = new List<string>();
        void Walk(JsonElement e)
        {
            if (e.ValueKind == JsonValueKind.Object)
                foreach (var p in e.EnumerateObject())
                {
                    if (p.Name is "expr" or "definition" && p.Value.ValueKind == JsonValueKind.String) expressions.Add(p.Value.GetString()!);
                    Walk(p.Value);
                }
            else if (e.ValueKind == JsonValueKind.Array)
                foreach (var item in e.EnumerateArray()) Walk(item);
        }
        Walk(dashboard.RootElement);
        Assert.True(expressions.Count >= 20, $"the dashboard has {expressions.Count} queries");
        var names = scrape.Samples.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var asked = expressions.SelectMany(x => MetricName().Matches(x).Select(m => m.Value)).ToHashSet(StringComparer.Ordinal);
        var unknown = asked.Where(n => !names.Contains(n)).Order(StringComparer.Ordinal).ToList();
        Assert.True(unknown.Count == 0, "the dashboard asks for metrics /metrics does not have: " + string.Join(", ", unknown));
        // It covers the SLO metrics: the mirror's result and latency, tasks by outcome, DHT lookups.
        foreach (var needed in new[] { "swarm_mirror_requests_total", "swarm_mirror_request_duration_seconds_bucket", "swarm_mirror_first_byte_seconds_bucket",
            "swarm_tasks_finished_total", "swarm_task_duration_seconds_bucket", "swarm_dht_lookup_duration_seconds_bucket", "swarm_piece_verification_duration_seconds_bucket" })
            Assert.Contains(needed, asked);
    }
}
