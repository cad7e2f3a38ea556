using System.Text.RegularExpressions;
using Swarm.Core.Content;
using Swarm.Tests.Support;

namespace Swarm.Tests.Cli;

/// <summary>
/// Issue #13 with the real <c>swarm</c> command: a seed's data file rots (a byte flipped, size and modification time kept),
/// and neither an embedded <c>get</c> nor one run by <c>swarm node</c> writes a wrong byte; a lost journal or manifest
/// heals by itself.
/// </summary>
public sealed partial class BitRotTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private const int Size = 3 * 1024 * 1024 + 777; // 256 KiB pieces

    [GeneratedRegex(@"\((\d+) bytes from peers, \d+ bytes from the origin, (\d+) bytes already local\)")]
    private static partial Regex Summary();

    /// <summary>A seed's data directory holding the content (the seed stopped), and an honest node that holds it too.</summary>
    private sealed class Lab : IAsyncDisposable
    {
        public required TempDirectory Dir { get; init; }
        public required string Id { get; init; }
        public required byte[] Original { get; init; }
        public required SwarmProcess Honest { get; init; }
        public required int HonestPort { get; init; }
        public string SeedData => Dir.Combine("seed-data");
        public string Entry => Path.Combine(SeedData, "content", ContentId.Parse(Id).Hex);
        public string DataFile => Path.Combine(Entry, "data");

        public async ValueTask DisposeAsync()
        {
            await Honest.DisposeAsync();
            Dir.Dispose();
        }
    }

    private static async Task<Lab> StartLabAsync()
    {
        var dir = new TempDirectory();
        string source = dir.WriteRandomFile("file.bin", Size, seed: 31);
        int seedPort = FreePort.Get();
        string id;
        await using (var seed = SwarmProcess.Start("seed", source, "--data-dir", dir.Combine("seed-data"), "--listen", $"127.0.0.1:{seedPort}"))
        {
            id = await seed.WaitForStdoutLineAsync(l => l.StartsWith("swarm://", StringComparison.Ordinal), Timeout);
            int honestPort = FreePort.Get();
            var honest = SwarmProcess.Start("node", "--data-dir", dir.Combine("honest"), "--listen", $"127.0.0.1:{honestPort}", "--metrics", "off", "--mirror", "off");
            await Poll.UntilAsync(() => honest.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || honest.HasExited, Timeout, "the honest node to start");
            Assert.False(honest.HasExited, honest.ToString());
            await using var get = await SwarmProcess.RunAsync(Timeout, "get", id, "--peer", $"127.0.0.1:{seedPort}", "-o", dir.Combine("honest-copy.bin"), "--data-dir", dir.Combine("honest"));
            Assert.True(get.ExitCode == 0, get.ToString());
            var lab = new Lab { Dir = dir, Id = id, Original = File.ReadAllBytes(source), Honest = honest, HonestPort = honestPort };
            seed.Terminate();
            await seed.WaitForExitAsync(Timeout);
            return lab;
        }
    }

    [Fact]
    public async Task Embedded_get_on_a_rotten_seed_directory_refetches_the_piece_from_a_peer_and_writes_the_right_bytes()
    {
        await using var lab = await StartLabAsync();
        Rot.FlipByte(lab.DataFile, 5 * 256 * 1024 + 3); // piece 5
        string output = lab.Dir.Combine("out.bin");

        await using var get = await SwarmProcess.RunAsync(Timeout, "get", lab.Id, "-o", output, "--data-dir", lab.SeedData,
            "--peer", $"127.0.0.1:{lab.HonestPort}", "--listen", "127.0.0.1:0");
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(lab.Original, File.ReadAllBytes(output));
        Assert.Contains($"piece 5 of {lab.Id} failed its hash check in the store", get.Stderr);
        var summary = Summary().Match(get.Stderr);
        Assert.True(summary.Success, get.Stderr);
        Assert.Equal((256 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture), summary.Groups[1].Value); // only the rotten piece
    }

    [Fact]
    public async Task Embedded_get_on_a_rotten_seed_directory_with_no_peer_fails_clearly_and_writes_nothing()
    {
        await using var lab = await StartLabAsync();
        Rot.FlipByte(lab.DataFile, 3 * 256 * 1024 + 100); // piece 3
        string output = lab.Dir.Combine("out", "file.bin");

        await using var get = await SwarmProcess.RunAsync(Timeout, "get", lab.Id, "-o", output, "--data-dir", lab.SeedData, "--listen", "127.0.0.1:0");
        Assert.True(get.ExitCode != 0, get.ToString());
        Assert.Contains($"piece 3 of {lab.Id} failed its hash check in the store and no peer could serve it again", get.Stderr);
        Assert.DoesNotContain("unexpected error", get.Stderr);
        Assert.False(File.Exists(output), "no output file");
        Assert.True(!Directory.Exists(lab.Dir.Combine("out")) || Directory.GetFiles(lab.Dir.Combine("out")).Length == 0, "no temporary file either");
        Assert.DoesNotContain(3, Rot.Journal(lab.Entry));
    }

    [Fact]
    public async Task Get_through_a_node_on_a_rotten_directory_refetches_counts_and_logs_the_rotten_piece()
    {
        await using var lab = await StartLabAsync();
        Rot.FlipByte(lab.DataFile, 7 * 256 * 1024 + 1); // piece 7
        int metrics = FreePort.Get();
        await using var node = SwarmProcess.Start("node", "--data-dir", lab.SeedData, "--listen", "127.0.0.1:0", "--metrics", $"127.0.0.1:{metrics}", "--mirror", "off");
        await Poll.UntilAsync(() => node.Stderr.Contains("ready: control socket", StringComparison.Ordinal) || node.HasExited, Timeout, "the node to start");
        Assert.False(node.HasExited, node.ToString());
        string output = lab.Dir.Combine("out.bin");

        await using var get = await SwarmProcess.RunAsync(Timeout, "get", lab.Id, "-o", output, "--data-dir", lab.SeedData, "--peer", $"127.0.0.1:{lab.HonestPort}");
        Assert.True(get.ExitCode == 0, get + "\nnode: " + node.Stderr);
        Assert.Equal(lab.Original, File.ReadAllBytes(output));
        // The node's log is written asynchronously: wait (bounded) for the line rather than race it.
        await Poll.UntilAsync(() => node.Stderr.Contains($"piece 7 of {lab.Id} failed its hash check in the store", StringComparison.Ordinal), Timeout, "the node to log the rotten piece\n" + node.Stderr);
        using var http = new HttpClient();
        string text = await http.GetStringAsync($"http://127.0.0.1:{metrics}/metrics", TestContext.Current.CancellationToken);
        Assert.Matches(@"(?m)^swarm_pieces_rotten_total 1$", text);
        Assert.Equal(Enumerable.Range(0, new PieceLayout(Size, PieceLayout.ChoosePieceSize(Size)).PieceCount), Rot.Journal(lab.Entry).Order());
    }

    [Fact]
    public async Task A_lost_journal_is_rebuilt_from_the_data_without_any_network_traffic()
    {
        await using var lab = await StartLabAsync();
        File.Delete(Path.Combine(lab.Entry, "pieces"));
        string output = lab.Dir.Combine("out.bin");

        // No --peer, no --bootstrap: only the store can serve it.
        await using var get = await SwarmProcess.RunAsync(Timeout, "get", lab.Id, "-o", output, "--data-dir", lab.SeedData, "--listen", "127.0.0.1:0");
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(lab.Original, File.ReadAllBytes(output));
        var summary = Summary().Match(get.Stderr);
        Assert.True(summary.Success, get.Stderr);
        Assert.Equal("0", summary.Groups[1].Value);
        Assert.Contains("had lost its journal", get.Stderr);
    }

    [Fact]
    public async Task A_deleted_manifest_is_rebuilt_from_a_peer_with_one_log_line_and_the_data_is_kept()
    {
        await using var lab = await StartLabAsync();
        File.Delete(Path.Combine(lab.Entry, "manifest"));
        string output = lab.Dir.Combine("out.bin");

        await using var get = await SwarmProcess.RunAsync(Timeout, "get", lab.Id, "-o", output, "--data-dir", lab.SeedData,
            "--peer", $"127.0.0.1:{lab.HonestPort}", "--listen", "127.0.0.1:0");
        Assert.True(get.ExitCode == 0, get.ToString());
        Assert.Equal(lab.Original, File.ReadAllBytes(output));
        Assert.Single(Regex.Matches(get.Stderr, "had no usable manifest; rebuilt it"));
        Assert.Equal("0", Summary().Match(get.Stderr).Groups[1].Value); // the data file was intact: nothing fetched but the manifest
    }
}
