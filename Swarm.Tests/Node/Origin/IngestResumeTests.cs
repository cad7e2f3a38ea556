using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Sources;
using Swarm.Node;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Origin;

/// <summary>
/// An ingest from the origin that is stopped keeps everything it read (whole pieces, pieces read and not yet stored, the
/// start of the piece being read) and the next run asks the origin for the rest only, with a range request conditional on
/// the same version; if the origin has another version by then, the new run ingests that one whole.
/// </summary>
[Collection(DhtNetworkCollection.Name)]
public class IngestResumeTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly IPEndPoint Loopback = new(IPAddress.Loopback, 0);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static byte[] RandomBytes(int size, int seed)
    {
        var b = new byte[size];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>Runs an ingest of <paramref name="url"/> and stops it once the origin has sent <paramref name="stopAfter"/> bytes.</summary>
    private static async Task StopMidwayAsync(LocalNode node, Uri url, CountingOrigin origin, long stopAfter)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        using var client = new OriginClient([]);
        var ingest = OriginIngest.RunAsync(node, url, TaskKey.For(url, null, []), client, null, null, stop.Token);
        await Poll.UntilAsync(() => origin.BytesSent >= stopAfter || ingest.IsCompleted, Timeout, "the origin to send part of the file");
        Assert.False(ingest.IsCompleted, "the ingest must be stopped mid-way");
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ingest.WaitAsync(Timeout, Ct));
    }

    [Fact]
    public async Task AStoppedIngestContinuesWhereItStoppedWithARangeRequest()
    {
        using var dir = new TempDirectory();
        var content = RandomBytes(6 * 1024 * 1024 + 5000, 71); // pieces of 256 KiB: the stop falls inside one
        await using var origin = new CountingOrigin { ChunkDelay = TimeSpan.FromMilliseconds(10), SupportsRanges = true };
        origin.Serve("/f.bin", content);
        var url = new Uri(origin.Url("/f.bin"));
        await using (var node = await LocalNode.StartAsync(dir.Combine("n"), new EngineOptions(), NullLogger.Instance, Loopback, [], Ct))
            await StopMidwayAsync(node, url, origin, content.Length / 2 + 100_000);
        long first = origin.BytesSent;
        int requestsBefore = origin.Requests;

        origin.ChunkDelay = TimeSpan.Zero;
        await using (var node = await LocalNode.StartAsync(dir.Combine("n"), new EngineOptions(), NullLogger.Instance, Loopback, [], Ct))
        {
            using var client = new OriginClient([]);
            var ingested = await OriginIngest.RunAsync(node, url, TaskKey.For(url, null, []), client, null, null, Ct).WaitAsync(Timeout, Ct);
            Assert.Equal(SHA256.HashData(content), SHA256.HashData(File.ReadAllBytes(ingested.Content.DataPath)));
            Assert.Equal(new Hash256(SHA256.HashData(content)), ingested.Validators.Sha256);
            Assert.False(ingested.Content.Manifest.IsLive);
        }
        // One request for the rest, conditional, answered 206: no whole-body GET first.
        Assert.Equal(requestsBefore + 1, origin.Requests);
        Assert.Equal(1, origin.RangeRequests);
        // Nothing read before the stop was asked for again: what the origin sent beyond the file is what was in flight
        // when the ingest stopped (a chunk or two of 64 KiB), not the pieces in the pipeline or the part of one read.
        Assert.True(origin.BytesSent <= content.Length + 2 * 65536, $"the origin sent {origin.BytesSent:N0} bytes for {content.Length:N0} (first run {first:N0})");
    }

    [Fact]
    public async Task AStoppedIngestOfAVersionTheOriginReplacedIngestsTheNewVersionWhole()
    {
        using var dir = new TempDirectory();
        var v1 = RandomBytes(4 * 1024 * 1024, 72);
        var v2 = RandomBytes(4 * 1024 * 1024, 73); // same length, other bytes (another ETag)
        await using var origin = new CountingOrigin { ChunkDelay = TimeSpan.FromMilliseconds(10), SupportsRanges = true };
        origin.Serve("/f.bin", v1);
        var url = new Uri(origin.Url("/f.bin"));
        await using (var node = await LocalNode.StartAsync(dir.Combine("n"), new EngineOptions(), NullLogger.Instance, Loopback, [], Ct))
            await StopMidwayAsync(node, url, origin, v1.Length / 2);

        origin.ChunkDelay = TimeSpan.Zero;
        origin.Serve("/f.bin", v2);
        long before = origin.BytesSent;
        await using (var node = await LocalNode.StartAsync(dir.Combine("n"), new EngineOptions(), NullLogger.Instance, Loopback, [], Ct))
        {
            using var client = new OriginClient([]);
            var ingested = await OriginIngest.RunAsync(node, url, TaskKey.For(url, null, []), client, null, null, Ct).WaitAsync(Timeout, Ct);
            // Not a splice of v1's first half and v2's second: the If-Range condition failed and v2 came whole.
            Assert.Equal(SHA256.HashData(v2), SHA256.HashData(File.ReadAllBytes(ingested.Content.DataPath)));
            Assert.Equal(new Hash256(SHA256.HashData(v2)), ingested.Validators.Sha256);
        }
        Assert.Equal(0, origin.RangeRequests);
        // v2 once (the stopped run's connection may still have written a chunk after the count was taken).
        Assert.InRange(origin.BytesSent - before, v2.Length, v2.Length + 2 * 65536);
    }

    [Fact]
    public async Task ADamagedPartialPieceFileIsNotBuiltOn()
    {
        using var dir = new TempDirectory();
        var content = RandomBytes(3 * 1024 * 1024 + 77, 74);
        await using var origin = new CountingOrigin { ChunkDelay = TimeSpan.FromMilliseconds(10), SupportsRanges = true };
        origin.Serve("/f.bin", content);
        var url = new Uri(origin.Url("/f.bin"));
        await using (var node = await LocalNode.StartAsync(dir.Combine("n"), new EngineOptions(), NullLogger.Instance, Loopback, [], Ct))
            await StopMidwayAsync(node, url, origin, content.Length / 2 + 70_000);
        var partials = Directory.GetFiles(dir.Combine("n"), PartialPiece.FileName, SearchOption.AllDirectories);
        string partial = Assert.Single(partials);
        // A byte of the kept start of a piece flips on disk: it must not go into the content (nor be signed as the origin's).
        using (var f = new FileStream(partial, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Seek(-1, SeekOrigin.End);
            int b = f.ReadByte();
            f.Seek(-1, SeekOrigin.End);
            f.WriteByte((byte)(b ^ 0x40));
        }
        origin.ChunkDelay = TimeSpan.Zero;
        await using (var node = await LocalNode.StartAsync(dir.Combine("n"), new EngineOptions(), NullLogger.Instance, Loopback, [], Ct))
        {
            using var client = new OriginClient([]);
            var ingested = await OriginIngest.RunAsync(node, url, TaskKey.For(url, null, []), client, null, null, Ct).WaitAsync(Timeout, Ct);
            Assert.Equal(SHA256.HashData(content), SHA256.HashData(File.ReadAllBytes(ingested.Content.DataPath)));
        }
        Assert.Empty(Directory.GetFiles(dir.Combine("n"), PartialPiece.FileName, SearchOption.AllDirectories));
    }
}
