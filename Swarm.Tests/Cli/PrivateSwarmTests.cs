using System.Runtime.Versioning;
using System.Text.Json;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>
/// A private swarm as an operator sets one up: <c>swarm keygen</c>, the key on every member, real <c>swarm node</c>,
/// <c>seed</c>, <c>get</c> and <c>dht</c> processes. Members transfer; a host without the key, or with another one, gets
/// no DHT answer, no session and no content id, and the members' metrics count the refusals.
/// </summary>
public sealed class PrivateSwarmTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static async Task<SwarmProcess> RunAsync(params string[] args)
    {
        var p = SwarmProcess.Start(args);
        await p.WaitForExitAsync(Timeout);
        return p;
    }

    private static async Task<string> KeygenAsync(string path)
    {
        await using var keygen = await RunAsync("keygen", path);
        Assert.True(keygen.ExitCode == 0, keygen.ToString());
        return path;
    }

    private static async Task<Dictionary<string, double>> MetricsAsync(int port)
    {
        using var http = new HttpClient();
        string text = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics", TestContext.Current.CancellationToken);
        return text.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split(' '))
            .ToDictionary(p => p[0], p => double.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    [SupportedOSPlatform("linux")]
    public async Task KeygenWritesAnOwnerOnlyKeyAndNeverReplacesOne()
    {
        using var dir = new TempDirectory();
        string path = dir.Combine("swarm.key");
        await using (var first = await RunAsync("keygen", path))
        {
            Assert.True(first.ExitCode == 0, first.ToString());
            Assert.Matches("^[0-9a-f]{16}$", first.Stdout.Trim());
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        string original = File.ReadAllText(path);
        Assert.StartsWith("swarm-key/v1\n", original, StringComparison.Ordinal);

        await using (var again = await RunAsync("keygen", path))
        {
            Assert.Equal(1, again.ExitCode);
            Assert.Contains("exists already", again.Stderr, StringComparison.Ordinal);
        }
        Assert.Equal(original, File.ReadAllText(path));

        // A key others may read is refused before anything starts, with the fix in the message.
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        await using var get = await RunAsync("get", "swarm://" + new string('a', 64), "-o", dir.Combine("out"), "--data-dir", dir.Combine("d"), "--swarm-key", path);
        Assert.Equal(1, get.ExitCode);
        Assert.Contains($"chmod 600 {path}", get.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", get.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MembersTransferAndOutsidersGetNoAnswerNoSessionAndNoContentId()
    {
        using var dir = new TempDirectory();
        string key = await KeygenAsync(dir.Combine("swarm.key"));
        string otherKey = await KeygenAsync(dir.Combine("other.key"));
        string file = dir.WriteRandomFile("payload.bin", 3 * 1024 * 1024 + 17, seed: 14);
        int port = FreePort.Get(), metrics = FreePort.Get();
        string member = $"127.0.0.1:{port}";

        await using var node = SwarmProcess.Start("node", "--data-dir", dir.Combine("a"), "--listen", member, "--metrics", $"127.0.0.1:{metrics}",
            "--mirror", "off", "--swarm-key", key);
        await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
        Assert.False(node.HasExited, node.ToString());
        string id;
        await using (var seed = await RunAsync("seed", file, "--data-dir", dir.Combine("a")))
        {
            Assert.True(seed.ExitCode == 0, seed.ToString());
            id = seed.Stdout.Trim();
        }

        // A member finds the content through the DHT and fetches it.
        await using (var get = await RunAsync("get", id, "-o", dir.Combine("member.bin"), "--data-dir", dir.Combine("m"), "--bootstrap", member, "--swarm-key", key))
        {
            Assert.True(get.ExitCode == 0, get.ToString());
            Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(dir.Combine("member.bin")));
        }

        // An outsider with no key, and one with another swarm's key: even knowing the id and the address, no session.
        foreach (var (name, extra, words) in new[] { ("none", Array.Empty<string>(), "this node has none"), ("wrong", new[] { "--swarm-key", otherKey }, "another swarm key") })
        {
            await using var get = await RunAsync(["get", id, "-o", dir.Combine($"{name}.bin"), "--data-dir", dir.Combine($"o-{name}"), "--bootstrap", member,
                "--peer", member, "--stall-timeout", "4s", .. extra]);
            Assert.True(get.ExitCode == 2, get.ToString());
            Assert.True(get.Stderr.Contains(words, StringComparison.Ordinal), get.ToString());
            Assert.False(File.Exists(dir.Combine($"{name}.bin")));
            Assert.DoesNotContain("   at ", get.Stderr, StringComparison.Ordinal);
        }

        // An outsider joining the DHT through the member gets no answer at all: no contacts, nothing to look up ids with.
        await using (var dht = await RunAsync("dht", "--json", "--data-dir", dir.Combine("o-dht"), "--bootstrap", member))
        {
            Assert.True(dht.ExitCode == 0, dht.ToString());
            Assert.Equal(0, JsonDocument.Parse(dht.Stdout).RootElement.GetProperty("routingTable").GetInt32());
        }

        var m = await MetricsAsync(metrics);
        Assert.True(m["swarm_connections_refused_total{reason=\"swarm_key\"}"] >= 2, "TCP refusals counted");
        Assert.True(m["swarm_dht_datagrams_dropped_total{reason=\"bad_key\"}"] >= 2, "DHT refusals counted");
        Assert.DoesNotContain("Exception", node.Stderr, StringComparison.Ordinal);
    }
}
