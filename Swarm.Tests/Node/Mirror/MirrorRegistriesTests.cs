using System.Net;
using System.Text.Json;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Mirror;

/// <summary>
/// The mirror-registries setting: where local clients are not trusted, <c>?ns=</c> may only name the registries it lists
/// (the default upstream is always allowed); a request for any other host gets 403 DENIED and the node contacts nothing.
/// </summary>
public sealed class MirrorRegistriesTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task NsNamingARegistryOutsideTheListIsDeniedAndTheListedOneIsServed()
    {
        using var dir = new TempDirectory();
        var image = OciImage.WriteLayout(dir.Combine("layout"), seed: 3, 64 * 1024);
        await using var registry = await DockerRegistry.StartAsync();
        await Skopeo.PushLayoutAsync(image.LayoutDirectory, $"{registry.Host}/demo/app:v1", Timeout);
        int mirror = FreePort.Get();
        await using var node = SwarmProcess.Start("node", "--data-dir", dir.Combine("node"), "--listen", "127.0.0.1:0", "--metrics", "off",
            "--mirror", $"127.0.0.1:{mirror}", "--upstream", "127.0.0.1:9", "--mirror-registries", registry.Host);
        await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
        Assert.False(node.HasExited, node.ToString());
        using var http = new HttpClient { Timeout = Timeout };
        var ct = TestContext.Current.CancellationToken;

        using (var allowed = await http.GetAsync($"http://127.0.0.1:{mirror}/v2/demo/app/manifests/v1?ns={Uri.EscapeDataString(registry.Host)}", ct))
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        foreach (string path in new[] { "manifests/v1", $"blobs/{image.Layers[0].Digest}", "tags/list" })
        {
            using var denied = await http.GetAsync($"http://127.0.0.1:{mirror}/v2/demo/app/{path}?ns=127.0.0.2%3A5000", ct);
            Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
            using var doc = JsonDocument.Parse(await denied.Content.ReadAsStringAsync(ct));
            var error = doc.RootElement.GetProperty("errors")[0];
            Assert.Equal("DENIED", error.GetProperty("code").GetString());
            Assert.Contains("mirror-registries", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        Assert.DoesNotContain("127.0.0.2", node.Stderr, StringComparison.Ordinal);

        // A bad list is a configuration error at start, not a surprise later.
        await using var bad = SwarmProcess.Start("node", "--data-dir", dir.Combine("bad"), "--listen", "127.0.0.1:0", "--metrics", "off", "--mirror", "off",
            "--mirror-registries", "*,docker.io");
        await bad.WaitForExitAsync(Timeout);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("mirror-registries", bad.Stderr, StringComparison.Ordinal);
    }
}
