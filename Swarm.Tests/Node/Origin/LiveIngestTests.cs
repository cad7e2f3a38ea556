using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Identity;
using Swarm.Core.Sources;
using Swarm.Node;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node.Origin;

/// <summary>
/// Serving while ingesting: a node reading a slow origin serves each piece as soon as it has read, hashed and signed it;
/// a downloader gets pieces long before the origin has sent the whole file, verifies each against the ingester's signed
/// hash, and ends with the same sealed content as the ingester.
/// </summary>
[Collection(DhtNetworkCollection.Name)]
public class LiveIngestTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly IPEndPoint Loopback = new(IPAddress.Loopback, 0);

    [Fact]
    public async Task ADownloaderGetsPiecesWhileTheIngesterStillReadsTheOrigin()
    {
        using var dir = new TempDirectory();
        var content = new byte[6 * 1024 * 1024 + 123];
        new Random(21).NextBytes(content);
        await using var origin = new CountingOrigin { ChunkDelay = TimeSpan.FromMilliseconds(15) }; // about 1.5 s for the file
        origin.Serve("/live.bin", content);
        var url = new Uri(origin.Url("/live.bin"));
        var taskKey = TaskKey.For(url, null, []);

        await using var ingester = await LocalNode.StartAsync(dir.Combine("a"), new EngineOptions(), NullLogger.Instance, Loopback, [], Ct);
        await using var downloader = await LocalNode.StartAsync(dir.Combine("b"), new EngineOptions(), NullLogger.Instance, Loopback, [], Ct);
        long originBytesAtFirstPiece = -1;
        downloader.Engine.PieceVerified += (_, _) => Interlocked.CompareExchange(ref originBytesAtFirstPiece, origin.BytesSent, -1);

        var liveId = new TaskCompletionSource<ContentId>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var client = new OriginClient([]);
        var ingest = OriginIngest.RunAsync(ingester, url, taskKey, client, null, (id, _) =>
        {
            liveId.TrySetResult(id);
            return Task.CompletedTask;
        }, Ct);
        var id = await liveId.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        var download = downloader.Engine.DownloadAsync(id, [ingester.EndPoint!], null, Ct);

        var ingested = await ingest.WaitAsync(TimeSpan.FromSeconds(60), Ct);
        var sealedAtIngester = ingested.Content;
        // The sealed pointer carries the whole content's SHA-256 and the origin's validators.
        Assert.Equal(new Hash256(SHA256.HashData(content)), ingested.Validators.Sha256);
        Assert.Equal(content.Length, ingested.Validators.Length);
        Assert.NotNull(ingested.Validators.ETag);
        var live = await download.WaitAsync(TimeSpan.FromSeconds(60), Ct);

        Assert.InRange(originBytesAtFirstPiece, 0, content.Length / 2); // pieces flowed while the origin was still sending
        Assert.True(live.Manifest.IsLive);
        Assert.Equal(SHA256.HashData(content), SHA256.HashData(File.ReadAllBytes(live.DataPath)));
        Assert.Equal(content.Length, origin.BytesSent); // the downloader never touched the origin
        Assert.False(sealedAtIngester.Manifest.IsLive);
        Assert.True(sealedAtIngester.Manifest.VerifySignature(sealedAtIngester.Signature));

        // The seal reaches the downloader, which then holds (and serves) the same sealed entry as the ingester.
        var swarm = downloader.Engine.Find(id)!;
        await Poll.UntilAsync(() => swarm.Sealed != null, TimeSpan.FromSeconds(30), "the downloader to seal the live content");
        Assert.Equal(sealedAtIngester.Id, swarm.Sealed!.Id);
        Assert.True(swarm.Sealed.IsComplete);
        Assert.NotNull(downloader.Engine.Find(sealedAtIngester.Id));
        using var reopened = downloader.Store.TryOpen(sealedAtIngester.Id);
        Assert.True(reopened!.IsComplete);
    }

    [Fact]
    public void LivePieceHashesAreAcceptedOnlyWithTheIngestersSignatureAndSealIntoTheOrdinaryManifest()
    {
        using var ingester = NodeKey.Generate();
        using var other = NodeKey.Generate();
        var data = new byte[3 * 256 * 1024 + 5];
        new Random(3).NextBytes(data);
        var layout = PieceLayout.For(data.Length);
        var taskKey = Hash256.Of("task"u8);
        var live = Manifest.Live(data.Length, layout.PieceSize, ingester.PublicKey, taskKey, "\"etag\"");

        var decoded = Manifest.Decode(live.Encoded);
        Assert.True(decoded.IsLive);
        Assert.Equal(live.Id, decoded.Id);
        Assert.Equal("\"etag\"", decoded.Validator);
        Assert.NotEqual(live.Id, Manifest.Live(data.Length, layout.PieceSize, ingester.PublicKey, taskKey, "\"other\"").Id);

        var hashes = new byte[layout.PieceCount * Hash256.Size];
        for (int i = 0; i < layout.PieceCount; i++)
        {
            var piece = data.AsSpan((int)layout.PieceOffset(i), layout.PieceLength(i));
            var hash = SHA256.HashData(piece);
            hash.CopyTo(hashes, i * Hash256.Size);
            Assert.False(decoded.VerifyPiece(i, piece)); // no hash yet: nothing verifies
            Assert.False(decoded.TryAddPieceHash(i, hash, other.Sign(decoded.PieceHashPayload(i, hash)))); // not the ingester
            var wrongPiece = decoded.PieceHashPayload(i == 0 ? 1 : 0, hash);
            Assert.False(decoded.TryAddPieceHash(i, hash, ingester.Sign(wrongPiece))); // signed for another piece
            Assert.True(decoded.TryAddPieceHash(i, hash, ingester.Sign(decoded.PieceHashPayload(i, hash))));
            Assert.True(decoded.VerifyPiece(i, piece));
            Assert.False(decoded.TryAddPieceHash(i, SHA256.HashData("x"u8), ingester.Sign(decoded.PieceHashPayload(i, SHA256.HashData("x"u8))))); // no second hash
        }
        var sealedManifest = decoded.Seal()!;
        Assert.Equal(new Manifest(data.Length, layout.PieceSize, hashes, ingester.PublicKey).Id, sealedManifest.Id);
        Assert.Null(Manifest.Live(data.Length, layout.PieceSize, ingester.PublicKey, taskKey, "v").Seal()); // hashes missing
    }

    [Fact]
    public async Task ALiveIdFetchedAfterItsIngesterSealedItIsSealedAtOnce()
    {
        // A small blob's ingest ends before anyone fetches it: the peer gets the seal right after the handshake, before
        // the manifest, and must keep it (it used to be dropped, and the download waited out the 10 s seal wait).
        using var dir = new TempDirectory();
        var content = new byte[753];
        new Random(22).NextBytes(content);
        await using var origin = new CountingOrigin();
        origin.Serve("/small.json", content);
        var url = new Uri(origin.Url("/small.json"));
        await using var ingester = await LocalNode.StartAsync(dir.Combine("a"), new EngineOptions(), NullLogger.Instance, Loopback, [], Ct);
        await using var downloader = await LocalNode.StartAsync(dir.Combine("b"), new EngineOptions(), NullLogger.Instance, Loopback, [], Ct);
        ContentId live = default;
        using var client = new OriginClient([]);
        var sealedAtIngester = (await OriginIngest.RunAsync(ingester, url, TaskKey.For(url, null, []), client, null, (id, _) =>
        {
            live = id;
            return Task.CompletedTask;
        }, Ct)).Content;

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var got = await downloader.Engine.DownloadAsync(live, [ingester.EndPoint!], null, Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        // Under the 10 s seal wait a dropped manifest would cost, with room for a busy machine.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"the download took {clock.Elapsed.TotalSeconds:0.0} s: the seal was not kept");
        Assert.Equal(content, File.ReadAllBytes(got.DataPath));
        Assert.Equal(sealedAtIngester.Id, downloader.Engine.Find(live)?.Sealed?.Id);
    }
}
