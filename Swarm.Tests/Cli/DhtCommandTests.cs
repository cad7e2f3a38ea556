using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>Finding content through the DHT with the real <c>swarm</c> command, as a new user would.</summary>
public class DhtCommandTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task GetFindsProvidersThroughAnotherNodeThanTheSeed()
    {
        using var dir = new TempDirectory();
        string source = dir.WriteRandomFile("f.bin", 3 * 1024 * 1024 + 11);
        int seedPort = FreePort.Get();
        await using var seed = SwarmProcess.Start("seed", source, "--data-dir", dir.Combine("seed"), "--listen", $"127.0.0.1:{seedPort}");
        string id = await seed.WaitForStdoutLineAsync(l => l.StartsWith("swarm://", StringComparison.Ordinal), ProcessTimeout);

        // Four more nodes, each knowing only the seed's address.
        var nodes = new List<(SwarmProcess Process, int Port)>();
        try
        {
            for (int i = 0; i < 4; i++)
            {
                int port = FreePort.Get();
                nodes.Add((SwarmProcess.Start("node", "--data-dir", dir.Combine($"node{i}"), "--listen", $"127.0.0.1:{port}", "--bootstrap", $"127.0.0.1:{seedPort}"), port));
            }
            foreach (var (p, _) in nodes)
                await Poll.UntilAsync(() => p.Stderr.Contains("listening on", StringComparison.Ordinal) || p.HasExited, ProcessTimeout, "node start");
            foreach (var (p, _) in nodes) Assert.False(p.HasExited, p.ToString());

            // A fifth host bootstraps from node 2 only, and gives no --peer.
            await using var get = await SwarmProcess.RunAsync(ProcessTimeout, "get", id, "-o", dir.Combine("out.bin"), "--data-dir", dir.Combine("getter"),
                "--bootstrap", $"127.0.0.1:{nodes[2].Port}", "--listen", "127.0.0.1:0");
            Assert.True(get.ExitCode == 0, get.ToString());
            Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(dir.Combine("out.bin")));

            // The getter saved its routing table: the view lists the nodes it met, without any --bootstrap.
            await using var view = await SwarmProcess.RunAsync(ProcessTimeout, "dht", "--data-dir", dir.Combine("getter"), "--listen", "127.0.0.1:0", "--json");
            Assert.True(view.ExitCode == 0, view.ToString());
            using var json = System.Text.Json.JsonDocument.Parse(view.Stdout);
            Assert.True(json.RootElement.GetProperty("routingTable").GetInt32() >= 3, view.Stdout);
        }
        finally
        {
            foreach (var (p, _) in nodes) await p.DisposeAsync();
        }
    }

    [Fact]
    public async Task GetWithNeitherPeersNorBootstrapSaysWhatToDo()
    {
        using var dir = new TempDirectory();
        await using var get = await SwarmProcess.RunAsync(ProcessTimeout, "get", "swarm://" + new string('a', 64), "-o", dir.Combine("o"), "--data-dir", dir.Combine("d"), "--listen", "127.0.0.1:0");
        Assert.Equal(1, get.ExitCode);
        Assert.Contains("--bootstrap", get.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetOfContentNobodyHasFailsNamingTheDht()
    {
        using var dir = new TempDirectory();
        int nodePort = FreePort.Get();
        await using var node = SwarmProcess.Start("node", "--data-dir", dir.Combine("n"), "--listen", $"127.0.0.1:{nodePort}");
        await Poll.UntilAsync(() => node.Stderr.Contains("listening on", StringComparison.Ordinal) || node.HasExited, ProcessTimeout, "node start");
        await using var get = await SwarmProcess.RunAsync(ProcessTimeout, "get", "swarm://" + new string('b', 64), "-o", dir.Combine("o"), "--data-dir", dir.Combine("d"),
            "--bootstrap", $"127.0.0.1:{nodePort}", "--listen", "127.0.0.1:0");
        Assert.Equal(2, get.ExitCode);
        Assert.Contains("no providers found in the DHT", get.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.Combine("o")));
    }
}
