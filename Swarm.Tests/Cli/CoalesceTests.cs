using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>
/// Identical requests share one transfer: several <c>get</c>s of one URL or id through one node, several embedded
/// <c>get</c>s in one data directory, and a <c>get</c> that meets the task a restarted node resumed.
/// </summary>
[Collection(DhtNetworkCollection.Name)] // many processes at once: run alone
public class CoalesceTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);

    private static byte[] RandomBytes(int size, int seed)
    {
        var b = new byte[size];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static async Task<SwarmProcess> StartNodeAsync(string dataDir)
    {
        var node = SwarmProcess.Start("node", "--data-dir", dataDir, "--listen", "127.0.0.1:0");
        await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
        Assert.False(node.HasExited, node.ToString());
        return node;
    }

    private static void AssertAllSucceeded(IReadOnlyList<SwarmProcess> gets, byte[] content, Func<int, string> output)
    {
        for (int i = 0; i < gets.Count; i++)
        {
            Assert.True(gets[i].ExitCode == 0, gets[i].ToString());
            Assert.Equal(content, File.ReadAllBytes(output(i)));
        }
    }

    [Fact]
    public async Task FiveGetsOfOneUrlThroughOneNodeShareOneFetch()
    {
        using var dir = new TempDirectory();
        var content = RandomBytes(4 * 1024 * 1024 + 5, 41);
        await using var origin = new CountingOrigin { ChunkDelay = TimeSpan.FromMilliseconds(20) }; // about 1.3 s: the gets overlap
        origin.Serve("/f.bin", content);
        string data = dir.Combine("node");
        await using var node = await StartNodeAsync(data);

        var gets = await Task.WhenAll(Enumerable.Range(0, 5).Select(i =>
            SwarmProcess.RunAsync(Timeout, "get", origin.Url("/f.bin"), "-o", dir.Combine($"out{i}.bin"), "--data-dir", data)));
        AssertAllSucceeded(gets, content, i => dir.Combine($"out{i}.bin"));
        Assert.True(origin.BytesSent == content.Length, $"the origin sent {origin.BytesSent:N0} bytes for a {content.Length:N0}-byte file ({origin.Requests} GETs)");
    }

    [Fact]
    public async Task FiveEmbeddedGetsInOneDataDirectoryShareOneFetch()
    {
        using var dir = new TempDirectory();
        var content = RandomBytes(4 * 1024 * 1024 + 5, 42);
        await using var origin = new CountingOrigin { ChunkDelay = TimeSpan.FromMilliseconds(20) };
        origin.Serve("/f.bin", content);
        string data = dir.Combine("data");

        var gets = await Task.WhenAll(Enumerable.Range(0, 5).Select(i =>
            SwarmProcess.RunAsync(Timeout, "get", origin.Url("/f.bin"), "-o", dir.Combine($"out{i}.bin"), "--data-dir", data, "--listen", "127.0.0.1:0")));
        AssertAllSucceeded(gets, content, i => dir.Combine($"out{i}.bin"));
        Assert.True(origin.BytesSent == content.Length, $"the origin sent {origin.BytesSent:N0} bytes for a {content.Length:N0}-byte file ({origin.Requests} GETs)");
        Assert.Contains(gets, g => g.Stderr.Contains("waiting for another swarm process", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AGetAfterARestartedNodeResumedTheSameTaskAttachesToIt()
    {
        using var dir = new TempDirectory();
        var content = RandomBytes(12 * 1024 * 1024, 43);
        await using var origin = new CountingOrigin { ChunkDelay = TimeSpan.FromMilliseconds(25), SupportsRanges = true }; // about 5 s
        origin.Serve("/slow.bin", content);
        string data = dir.Combine("node");
        string output = dir.Combine("out.bin");
        await using (var node = await StartNodeAsync(data))
        {
            await using var get = SwarmProcess.Start("get", origin.Url("/slow.bin"), "-o", output, "--data-dir", data);
            await Poll.UntilAsync(() => origin.BytesSent >= content.Length / 4 || get.HasExited, Timeout, "a quarter of the file");
            node.Terminate();
            await node.WaitForExitAsync(Timeout);
            await get.WaitForExitAsync(Timeout);
            Assert.Contains("resumes the task", get.Stderr, StringComparison.Ordinal);
        }
        Assert.True(origin.BytesSent < content.Length, "the node must be stopped mid-download");

        await using var restarted = await StartNodeAsync(data);
        Assert.Contains("1 task(s) resumed", restarted.Stderr, StringComparison.Ordinal);
        // What a user does after the first get said the node resumes: the same command again.
        await using var again = await SwarmProcess.RunAsync(Timeout, "get", origin.Url("/slow.bin"), "-o", output, "--data-dir", data);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(content, File.ReadAllBytes(output));
        // Each run can lose what was in flight: the bytes of the piece being read at the stop, and at the resume what the
        // origin sent on the full GET (which tells the version) before the range request replaced it. Measured: about
        // three 64 KiB chunks each. Two pieces bound that; a refetch of what was stored would be far more (a quarter).
        long piece = PieceLayout.For(content.Length).PieceSize;
        Assert.True(origin.BytesSent <= content.Length + 2 * piece, $"the origin sent {origin.BytesSent:N0} bytes for a {content.Length:N0}-byte file (pieces of {piece:N0})");
    }

    [Fact]
    public async Task TwoGetsOfOneIdThroughOneNodeShareOneDownload()
    {
        using var dir = new TempDirectory();
        // A seed that uploads slowly, so the two gets overlap.
        await using var seeded = await SeededNode.StartAsync(3 * 1024 * 1024, 44, new EngineOptions { UploadRate = 1024 * 1024 });
        string data = dir.Combine("node");
        await using var node = await StartNodeAsync(data);
        string peer = $"127.0.0.1:{seeded.EndPoint.Port}";

        var gets = await Task.WhenAll(Enumerable.Range(0, 2).Select(i =>
            SwarmProcess.RunAsync(Timeout, "get", seeded.Id.ToUri(), "--peer", peer, "-o", dir.Combine($"out{i}.bin"), "--data-dir", data)));
        AssertAllSucceeded(gets, seeded.Original, i => dir.Combine($"out{i}.bin"));
        long length = seeded.Content.Layout.Length;
        Assert.True(seeded.Node.Engine.TotalBytesUploaded <= length + length / 10, $"the seed uploaded {seeded.Node.Engine.TotalBytesUploaded:N0} bytes of a {length:N0}-byte file");
    }
}
