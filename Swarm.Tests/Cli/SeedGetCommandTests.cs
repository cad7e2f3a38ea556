using System.Text.RegularExpressions;
using Swarm.Core.Content;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>The real <c>swarm</c> command in child processes, as a user runs it.</summary>
public partial class SeedGetCommandTests
{
    private static readonly TimeSpan ProcessTimeout = TimeSpan.FromSeconds(60);

    [GeneratedRegex(@"\((\d+) bytes from peers, \d+ bytes from the origin, (\d+) bytes already local\)")]
    private static partial Regex Summary();

    private static async Task<(SwarmProcess Seed, string Id, int Port)> StartSeedAsync(TempDirectory dir, string file, params string[] extra)
    {
        int port = FreePort.Get();
        var seed = SwarmProcess.Start([.. new[] { "seed", file, "--data-dir", dir.Combine("seed-data"), "--listen", $"127.0.0.1:{port}" }, .. extra]);
        string id = await seed.WaitForStdoutLineAsync(l => l.StartsWith("swarm://", StringComparison.Ordinal), ProcessTimeout);
        return (seed, id, port);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(PieceLayout.MinPieceSize - 1)]
    [InlineData(3 * 1024 * 1024 + 5)]
    public async Task SeedThenGetGivesIdenticalFileAndSecondGetFetchesNothing(int size)
    {
        using var dir = new TempDirectory();
        string source = dir.WriteRandomFile("big.bin", size, seed: size + 7);
        var (seed, id, port) = await StartSeedAsync(dir, source);
        await using var _ = seed;

        await using var get = await SwarmProcess.RunAsync(ProcessTimeout, "get", id, "--peer", $"127.0.0.1:{port}", "-o", dir.Combine("out.bin"), "--data-dir", dir.Combine("get-data"));
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(dir.Combine("out.bin")));
        var first = Summary().Match(get.Stderr);
        Assert.True(first.Success, get.Stderr);
        Assert.Equal(size.ToString(System.Globalization.CultureInfo.InvariantCulture), first.Groups[1].Value);

        await using var again = await SwarmProcess.RunAsync(ProcessTimeout, "get", id, "--peer", $"127.0.0.1:{port}", "-o", dir.Combine("out2.bin"), "--data-dir", dir.Combine("get-data"));
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(dir.Combine("out2.bin")));
        Assert.Equal("0", Summary().Match(again.Stderr).Groups[1].Value);
    }

    [Fact]
    public async Task GetKilledHalfwayResumesFetchingOnlyMissingPiecesAndNeverLeavesAPartialFile()
    {
        using var dir = new TempDirectory();
        const int size = 24 * 1024 * 1024;
        string source = dir.WriteRandomFile("big.bin", size);
        var (seed, id, port) = await StartSeedAsync(dir, source, "--upload-rate", "6MiB/s");
        await using var _ = seed;
        string output = dir.Combine("out", "big.bin");
        string getData = dir.Combine("get-data");
        string journal = Path.Combine(getData, "content", ContentId.Parse(id).Hex, "pieces");
        int pieces = new PieceLayout(size, PieceLayout.ChoosePieceSize(size)).PieceCount;

        await using (var first = SwarmProcess.Start("get", id, "--peer", $"127.0.0.1:{port}", "-o", output, "--data-dir", getData))
        {
            await Poll.UntilAsync(() => File.Exists(journal) && new FileInfo(journal).Length / 4 >= pieces * 0.4 || first.HasExited, TimeSpan.FromSeconds(30), "40% of pieces verified");
            Assert.False(first.HasExited, first.ToString());
            Assert.False(File.Exists(output), "no partial file may appear at the output path");
            first.Kill();
            await first.WaitForExitAsync(TimeSpan.FromSeconds(10));
        }
        Assert.False(File.Exists(output), "a killed get must not leave a file at the output path");
        Assert.Empty(Directory.Exists(Path.GetDirectoryName(output)) ? Directory.GetFiles(Path.GetDirectoryName(output)!) : []);
        long verifiedBefore = new FileInfo(journal).Length / 4;

        await using var second = await SwarmProcess.RunAsync(ProcessTimeout, "get", id, "--peer", $"127.0.0.1:{port}", "-o", output, "--data-dir", getData);
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(output));
        var m = Summary().Match(second.Stderr);
        Assert.True(m.Success, second.Stderr);
        long fromPeers = long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        long already = long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(already >= verifiedBefore * PieceLayout.MinPieceSize, $"kept {already} bytes, expected at least {verifiedBefore} pieces");
        Assert.Equal(size, fromPeers + already); // only the missing pieces were fetched
    }

    [Fact]
    public async Task GetWithUnreachablePeersFailsQuicklyWithAClearMessage()
    {
        using var dir = new TempDirectory();
        int port = FreePort.Get();
        string id = new ContentId(Hash256.Random()).ToUri();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await using var get = await SwarmProcess.RunAsync(ProcessTimeout, "get", id, "--peer", $"127.0.0.1:{port}", "-o", dir.Combine("out.bin"), "--data-dir", dir.Combine("d"));
        Assert.Equal(2, get.ExitCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
        Assert.Contains("no peer could serve", get.Stderr, StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{port}", get.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(dir.Combine("out.bin")));
    }

    [Fact]
    public async Task VerboseLogLinesCarryTheTimeSinceStartAndPlainOnesDoNot()
    {
        using var dir = new TempDirectory();
        int port = FreePort.Get();
        string id = new ContentId(Hash256.Random()).ToUri();
        await using var verbose = await SwarmProcess.RunAsync(ProcessTimeout, "get", id, "--peer", $"127.0.0.1:{port}", "-o", dir.Combine("out.bin"), "--data-dir", dir.Combine("v"), "-v");
        Assert.Equal(2, verbose.ExitCode);
        var stamps = Regex.Matches(verbose.Stderr, @"^swarm: \[ *(\d+) ms\] ", RegexOptions.Multiline).Select(m => long.Parse(m.Groups[1].Value)).ToList();
        Assert.True(stamps.Count >= 1, verbose.ToString()); // the DHT node starting, at least
        Assert.All(stamps, ms => Assert.InRange(ms, 0, 120_000));
        Assert.Equal(stamps.Order(), stamps); // time only moves forward
        await using var plain = await SwarmProcess.RunAsync(ProcessTimeout, "get", id, "--peer", $"127.0.0.1:{port}", "-o", dir.Combine("out.bin"), "--data-dir", dir.Combine("p"));
        Assert.Equal(2, plain.ExitCode);
        Assert.DoesNotMatch(@"swarm: \[ *\d+ ms\]", plain.Stderr);
    }

    [Fact]
    public async Task BadInputGivesOneLineErrorsAndDistinctExitCodes()
    {
        using var dir = new TempDirectory();
        await using var badId = await SwarmProcess.RunAsync(ProcessTimeout, "get", "swarm://not-an-id", "--peer", "127.0.0.1:1", "-o", dir.Combine("o"), "--data-dir", dir.Combine("d"));
        Assert.Equal(1, badId.ExitCode);
        Assert.Contains("is not a content id", badId.Stderr, StringComparison.Ordinal);

        await using var badPeer = await SwarmProcess.RunAsync(ProcessTimeout, "get", new ContentId(Hash256.Random()).ToUri(), "--peer", "nowhere", "-o", dir.Combine("o"), "--data-dir", dir.Combine("d"));
        Assert.Equal(1, badPeer.ExitCode);
        Assert.Contains("IP:PORT", badPeer.Stderr, StringComparison.Ordinal);

        await using var missing = await SwarmProcess.RunAsync(ProcessTimeout, "seed", dir.Combine("does-not-exist.bin"), "--data-dir", dir.Combine("d"), "--listen", "127.0.0.1:0");
        Assert.Equal(3, missing.ExitCode);
        Assert.Contains("file not found", missing.Stderr, StringComparison.Ordinal);
        Assert.Single(missing.Stderr.Trim().Split('\n'));
    }

    [Fact]
    public async Task SeedStopsGracefullyOnSigterm()
    {
        using var dir = new TempDirectory();
        string source = dir.WriteRandomFile("f.bin", 1000);
        var (seed, _, _) = await StartSeedAsync(dir, source);
        await using var _ = seed;
        seed.Terminate();
        await seed.WaitForExitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(0, seed.ExitCode);
    }
}
