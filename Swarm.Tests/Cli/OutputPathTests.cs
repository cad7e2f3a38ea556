using System.Net.Http.Json;
using System.Net.Sockets;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>
/// Issue #13 as a user meets it: <c>swarm get swarm://ID -o X</c> where X is a FIFO, a symbolic link or a character
/// device, with no node running (the embedded path) and through a <c>swarm node</c> (the node writes the file); X keeps
/// its type and gets the bytes. A directory is refused before anything is fetched.
/// </summary>
public sealed class OutputPathTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private sealed class Setup : IAsyncDisposable
    {
        public required TempDirectory Dir { get; init; }
        public required SwarmProcess Seed { get; init; }
        public SwarmProcess? Node { get; init; }
        public required string Id { get; init; }
        public required int SeedPort { get; init; }
        public required byte[] Bytes { get; init; }
        public string DataDir => Dir.Combine(Node != null ? "node-data" : "get-data");

        public Task<SwarmProcess> GetAsync(string output) =>
            SwarmProcess.RunAsync(Timeout, "get", Id, "--peer", $"127.0.0.1:{SeedPort}", "-o", output, "--data-dir", DataDir);

        public async ValueTask DisposeAsync()
        {
            if (Node != null) await Node.DisposeAsync();
            await Seed.DisposeAsync();
            Dir.Dispose();
        }
    }

    private static async Task<Setup> StartAsync(bool throughNode)
    {
        var dir = new TempDirectory();
        string source = dir.WriteRandomFile("source.bin", 3 * 1024 * 1024 + 17, seed: 13);
        int port = FreePort.Get();
        var seed = SwarmProcess.Start("seed", source, "--data-dir", dir.Combine("seed-data"), "--listen", $"127.0.0.1:{port}");
        string id = await seed.WaitForStdoutLineAsync(l => l.StartsWith("swarm://", StringComparison.Ordinal), Timeout);
        SwarmProcess? node = null;
        if (throughNode)
        {
            node = SwarmProcess.Start("node", "--data-dir", dir.Combine("node-data"), "--listen", "127.0.0.1:0", "--metrics", "off", "--mirror", "off");
            await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
            Assert.False(node.HasExited, node.ToString());
        }
        return new Setup { Dir = dir, Seed = seed, Node = node, Id = id, SeedPort = port, Bytes = File.ReadAllBytes(source) };
    }

    private static void AssertHandedToNode(Setup s, SwarmProcess get) =>
        Assert.Equal(s.Node != null, get.Stderr.Contains("handing this to the node", StringComparison.Ordinal));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task GetWritesThroughAFifoAndIntoASymlinksTargetAndRefusesADirectory(bool throughNode)
    {
        await using var s = await StartAsync(throughNode);

        string fifo = s.Dir.Combine("pipe");
        SpecialFiles.MakeFifo(fifo);
        using (var reader = SpecialFiles.ReadFifo(fifo))
        {
            await using var get = await s.GetAsync(fifo);
            Assert.True(get.ExitCode == 0, get + (s.Node?.Stderr ?? ""));
            AssertHandedToNode(s, get);
            Assert.Equal(s.Bytes, await reader.Bytes.WaitAsync(Timeout, TestContext.Current.CancellationToken));
        }
        Assert.Equal("fifo", SpecialFiles.TypeOf(fifo));

        string real = s.Dir.Combine("real.bin");
        File.WriteAllText(real, "old");
        string link = s.Dir.Combine("link.bin");
        File.CreateSymbolicLink(link, "real.bin");
        await using (var get = await s.GetAsync(link))
        {
            Assert.True(get.ExitCode == 0, get + (s.Node?.Stderr ?? ""));
            AssertHandedToNode(s, get);
        }
        Assert.Equal("symbolic link", SpecialFiles.TypeOf(link));
        Assert.Equal("real.bin", new FileInfo(link).LinkTarget);
        Assert.Equal(s.Bytes, File.ReadAllBytes(real));

        string dir = s.Dir.Combine("adir");
        Directory.CreateDirectory(dir);
        await using (var get = await s.GetAsync(dir))
        {
            Assert.True(get.ExitCode == 1, get.ToString());
            Assert.Contains("is a directory", get.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("handing this to the node", get.Stderr, StringComparison.Ordinal); // refused before anything
        }
        Assert.Empty(Directory.GetFileSystemEntries(dir));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task GetOntoACharacterDeviceWritesThroughItAndLeavesTheDevice(bool throughNode)
    {
        using var scratch = new TempDirectory();
        SpecialFiles.MakeNullDevice(scratch.Combine("probe")); // skips without root, before starting processes
        await using var s = await StartAsync(throughNode);
        string device = s.Dir.Combine("null");
        SpecialFiles.MakeNullDevice(device);
        await using var get = await s.GetAsync(device);
        Assert.True(get.ExitCode == 0, get + (s.Node?.Stderr ?? ""));
        AssertHandedToNode(s, get);
        Assert.Equal("character special file", SpecialFiles.TypeOf(device));
        Assert.Equal("1 3", SpecialFiles.DeviceNumbers(device));
    }

    /// <summary>The node checks the output itself (a client other than the CLI, or an output changed since): 400, no task.</summary>
    [Fact]
    public async Task TheNodeRefusesATaskWhoseOutputIsADirectoryOrASocket()
    {
        await using var s = await StartAsync(throughNode: true);
        string dir = s.Dir.Combine("adir");
        Directory.CreateDirectory(dir);
        string socketPath = s.Dir.Combine("sock");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(socketPath));
        string control = Path.Combine(s.DataDir, "swarm.sock");
        using var http = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var c = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await c.ConnectAsync(new UnixDomainSocketEndPoint(control), ct);
                return new NetworkStream(c, ownsSocket: true);
            },
        }) { BaseAddress = new Uri("http://swarm/") };
        foreach (var (output, says) in new[] { (dir, "is a directory"), (socketPath, "is a socket") })
        {
            using var response = await http.PostAsJsonAsync("v1/tasks", new { source = s.Id, output, peers = new[] { $"127.0.0.1:{s.SeedPort}" } }, TestContext.Current.CancellationToken);
            string body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
            Assert.True(response.StatusCode == System.Net.HttpStatusCode.BadRequest, body);
            Assert.Contains(says, body, StringComparison.Ordinal);
        }
        Assert.Equal("[]", await http.GetStringAsync("v1/tasks", TestContext.Current.CancellationToken));
        Assert.Equal("directory", SpecialFiles.TypeOf(dir));
        Assert.Equal("socket", SpecialFiles.TypeOf(socketPath));
    }
}
