using Swarm.Core.Sources;
using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Exchange;
using Swarm.Core.Identity;
using Swarm.Core.Storage;
using Swarm.Node;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node;

/// <summary>
/// Whole swarms in one process (real sockets on loopback, the DHT, per-node rate limits) facing a node that lies and a
/// node that dies mid-transfer.
/// </summary>
[Collection(DhtNetworkCollection.Name)] // heavy: runs alone, like the big DHT tests
public class SwarmResilienceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly IPEndPoint Loopback = new(IPAddress.Loopback, 0);
    // Every node on 127.0.0.1: each counts as its own host for the DHT's per-address limits.
    private static readonly DhtOptions Dht = new() { HoldingsUpdateDelay = TimeSpan.FromMilliseconds(200), RpcTimeout = TimeSpan.FromMilliseconds(500), LoopbackAsHosts = true };

    private static EngineOptions Rated(long rate) => new()
    {
        UploadRate = rate,
        DownloadRate = rate,
        ChokeInterval = TimeSpan.FromSeconds(1),
        OptimisticInterval = TimeSpan.FromSeconds(3),
        StallTimeout = TimeSpan.FromSeconds(60),
        ConnectTimeout = TimeSpan.FromSeconds(2),
    };

    /// <param name="pieceSize">0: the store's choice for 8 MiB (256 KiB, two blocks a piece, so a piece rarely mixes
    /// blocks from several peers); 1 MiB and 4 MiB (8 and 32 blocks a piece, as for content of 1 and 4 GB): pieces often mix
    /// the liar's blocks with honest ones, so the parole rules are exercised too, and a node must still end up banning
    /// the liar rather than finish with it merely on parole.</param>
    [Theory]
    [InlineData(0)]
    [InlineData(1024 * 1024)]
    [InlineData(4 * 1024 * 1024)]
    public async Task NodeServingCorruptBlocksIsBannedByEveryHonestNodeItFedAndAllFinishWithTheRightBytes(int pieceSize)
    {
        const int honest = 10;
        const int size = 8 * 1024 * 1024;
        var options = Rated(8L * 1024 * 1024);
        using var dir = new TempDirectory();
        string source = dir.WriteRandomFile("content.bin", size, seed: 21);

        await using var seed = await LocalNode.StartAsync(dir.Combine("seed"), options, NullLogger.Instance, Loopback, [], Ct, Dht);
        StoredContent content = pieceSize == 0
            ? await Ingest.FileAsync(seed.Store, source, seed.Key, null, Ct)
            : StoreWithPieceSize(seed.Store, seed.Key, source, pieceSize);
        var id = content.Id;
        await using var liar = await LocalNode.StartAsync(dir.Combine("liar"), options, NullLogger.Instance, Loopback, [seed.EndPoint!], Ct, Dht);
        var lie = CopyWithCorruptData(seed.Store, liar.Store, id);
        Assert.True(lie.IsComplete, "the liar's store must believe its corrupt copy is verified, or it would not serve it");

        var getters = new List<LocalNode>();
        try
        {
            for (int i = 0; i < honest; i++)
                getters.Add(await LocalNode.StartAsync(dir.Combine($"n{i}"), options, NullLogger.Instance, Loopback, [seed.EndPoint!], Ct, Dht));
            await seed.ServeAsync(content, Ct);
            await liar.ServeAsync(lie, Ct); // announced in the DHT like any holder

            var clock = Stopwatch.StartNew();
            var downloads = getters.Select(g => g.Engine.DownloadAsync(id, [seed.EndPoint!, liar.EndPoint!], null, Ct, g.Discovery)).ToList();
            var all = await Task.WhenAll(downloads).WaitAsync(TimeSpan.FromSeconds(25), Ct);
            var elapsed = clock.Elapsed;

            var expected = File.ReadAllBytes(source);
            for (int i = 0; i < honest; i++)
            {
                string output = dir.Combine($"out{i}.bin");
                all[i].Export(output);
                Assert.True(expected.AsSpan().SequenceEqual(File.ReadAllBytes(output)), $"node {i} exported bytes that differ from the source");
            }

            var report = string.Join("; ", getters.Select((g, i) =>
            {
                var swarm = g.Engine.Find(id)!;
                return $"n{i}: hash failures {swarm.HashFailures}, banned liar {g.Engine.Bans.IsBanned(liar.Key.NodeId)}, wasted {swarm.BytesWasted}";
            }));
            // Every honest node that took bytes from the liar into a piece (which then failed its hash) has banned it.
            foreach (var g in getters)
            {
                if (g.Engine.Find(id)!.HashFailures > 0)
                    Assert.True(g.Engine.Bans.IsBanned(liar.Key.NodeId), $"a node that verified corrupt data did not ban the liar ({elapsed.TotalSeconds:0.0} s): {report}");
            }
            Assert.True(getters.Any(g => g.Engine.Bans.IsBanned(liar.Key.NodeId)), $"nobody caught the liar: {report}");
            // Nobody honest is banned by anyone: a piece mixing the liar's blocks with honest ones must not cost an honest peer.
            var honestIds = getters.Select(g => g.Key.NodeId).Append(seed.Key.NodeId).ToList();
            foreach (var g in getters)
                foreach (var other in honestIds)
                    Assert.False(g.Engine.Bans.IsBanned(other), $"an honest node banned an honest peer: {report}");
            TestContext.Current.SendDiagnosticMessage($"all done in {elapsed.TotalSeconds:0.0} s; {report}");
            // Nor does a banned liar keep a session with anyone.
            foreach (var g in getters.Where(g => g.Engine.Bans.IsBanned(liar.Key.NodeId)))
                Assert.DoesNotContain(g.Engine.Find(id)!.Sessions, s => s.Peer.NodeId == liar.Key.NodeId);
        }
        finally
        {
            foreach (var g in getters) await g.DisposeAsync();
        }
    }

    [Fact]
    public async Task NodeKilledMidTransferDoesNotStallTheOthers()
    {
        const int downloaders = 6;
        const int size = 8 * 1024 * 1024;
        // 2 MiB/s per node: 48 MiB to deliver over seven uplinks takes several seconds. Timeouts stay long, so only
        // noticing the dead connection at once (not a request or stall timeout) finishes in time.
        var options = Rated(2L * 1024 * 1024) with { StallTimeout = TimeSpan.FromSeconds(60), RequestTimeout = TimeSpan.FromSeconds(30), IdleTimeout = TimeSpan.FromSeconds(120) };
        using var dir = new TempDirectory();
        string source = dir.WriteRandomFile("content.bin", size, seed: 22);

        await using var seed = await LocalNode.StartAsync(dir.Combine("seed"), options, NullLogger.Instance, Loopback, [], Ct, Dht);
        StoredContent content = await Ingest.FileAsync(seed.Store, source, seed.Key, null, Ct);
        var id = content.Id;
        var getters = new List<LocalNode>();
        LocalNode? victim = null;
        try
        {
            for (int i = 0; i < downloaders; i++)
                getters.Add(await LocalNode.StartAsync(dir.Combine($"n{i}"), options, NullLogger.Instance, Loopback, [seed.EndPoint!], Ct, Dht));
            await seed.ServeAsync(content, Ct);
            var clock = Stopwatch.StartNew();
            var downloads = getters.ToDictionary(g => g, g => g.Engine.DownloadAsync(id, [seed.EndPoint!], null, Ct, g.Discovery));

            // Once someone holds a quarter of the content, kill the downloader others have been getting the most from.
            int pieces = content.Layout.PieceCount;
            int Verified(LocalNode g) => g.Engine.Find(id)?.Content?.Verified.Count ?? 0;
            await Poll.UntilAsync(() => getters.Any(g => Verified(g) >= pieces / 4), TimeSpan.FromSeconds(15), "a downloader to verify a quarter of the content");
            victim = getters.Where(g => Verified(g) < pieces).MaxBy(g => g.Engine.Find(id)!.BytesUploaded)!;
            var victimState = $"victim had {Verified(victim)}/{pieces} pieces, uploaded {victim.Engine.Find(id)!.BytesUploaded} bytes, {victim.Engine.Find(id)!.PeerCount} peers";
            var killedAt = clock.Elapsed;
            var victimDownload = downloads[victim];
            await victim.DisposeAsync();
            await Record.ExceptionAsync(() => victimDownload.WaitAsync(TimeSpan.FromSeconds(10), Ct)); // it ends one way or another
            Assert.True(victimDownload.IsCompleted, "the killed node's download did not end");

            var survivors = getters.Where(g => g != victim).ToList();
            var remaining = Task.WhenAll(survivors.Select(g => downloads[g]));
            var bound = TimeSpan.FromSeconds(20);
            var finished = await Task.WhenAny(remaining, Task.Delay(bound, Ct));
            var afterKill = clock.Elapsed - killedAt;
            Assert.True(finished == remaining,
                $"survivors not done {afterKill.TotalSeconds:0.0} s after the kill (stall timeout 60 s); {victimState}; " +
                string.Join("; ", survivors.Select(g => $"{Verified(g)}/{pieces}: {g.Engine.Find(id)!.Describe()}")));
            var all = await remaining;

            var expected = File.ReadAllBytes(source);
            for (int i = 0; i < all.Length; i++)
            {
                string output = dir.Combine($"out{i}.bin");
                all[i].Export(output);
                Assert.True(expected.AsSpan().SequenceEqual(File.ReadAllBytes(output)), $"survivor {i} exported bytes that differ from the source");
            }
            TestContext.Current.SendDiagnosticMessage($"killed at {killedAt.TotalSeconds:0.0} s ({victimState}); survivors done {afterKill.TotalSeconds:0.0} s later");
        }
        finally
        {
            foreach (var g in getters.Where(g => g != victim)) await g.DisposeAsync();
        }
    }

    [Fact]
    public async Task CancellingADownloadEndsItWithOperationCanceledException()
    {
        // A slow seed, so the download is surely under way and connected when the caller gives up (Ctrl-C in `swarm get`).
        using var dir = new TempDirectory();
        string source = dir.WriteRandomFile("content.bin", 4 * 1024 * 1024, seed: 23);
        await using var seed = new TestNode(new EngineOptions { UploadRate = 512 * 1024 });
        var content = await seed.SeedAsync(source);
        await using var getter = new TestNode(new EngineOptions { StallTimeout = TimeSpan.FromSeconds(60) }, listen: false);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var download = getter.Engine.DownloadAsync(content.Id, [seed.EndPoint], null, cancel.Token);
        await Poll.UntilAsync(() => getter.Engine.Find(content.Id)?.BytesFromPeers > 0, TimeSpan.FromSeconds(5), "the first block");

        await cancel.CancelAsync();
        var error = await Record.ExceptionAsync(() => download.WaitAsync(TimeSpan.FromSeconds(5), Ct));

        // The CLI maps OperationCanceledException to exit code 130 ("interrupted; verified pieces are kept") and
        // PeerUnavailableException to 2 ("could not be fetched").
        Assert.True(error is OperationCanceledException, $"a cancelled download must end with OperationCanceledException, got {error?.GetType().Name}: {error?.Message}");
    }

    /// <summary>Puts a file into a store as complete content with the given piece size (ingest would choose its own).</summary>
    private static StoredContent StoreWithPieceSize(ContentStore store, NodeKey key, string path, int pieceSize)
    {
        byte[] data = File.ReadAllBytes(path);
        var layout = new PieceLayout(data.Length, pieceSize);
        var hashes = new byte[layout.PieceCount * Hash256.Size];
        for (int i = 0; i < layout.PieceCount; i++)
            SHA256.HashData(data.AsSpan((int)layout.PieceOffset(i), layout.PieceLength(i)), hashes.AsSpan(i * Hash256.Size));
        var manifest = new Manifest(data.Length, pieceSize, hashes, key.PublicKey);
        var content = store.OpenOrCreate(manifest, key.Sign(manifest.SignedPayload()));
        for (int i = 0; i < layout.PieceCount; i++)
            Assert.True(content.TryCommitPiece(i, data.AsSpan((int)layout.PieceOffset(i), layout.PieceLength(i))));
        Assert.True(content.IsComplete);
        return content;
    }

    /// <summary>
    /// A second holder of <paramref name="id"/>: the source store's entry copied with every data byte flipped, and its
    /// stamp rewritten so the store trusts the damaged file as verified (a lying node does not care).
    /// </summary>
    private static StoredContent CopyWithCorruptData(ContentStore from, ContentStore to, ContentId id)
    {
        string source = Path.Combine(from.ContentRoot, id.Hex);
        string target = Path.Combine(to.ContentRoot, id.Hex);
        Directory.CreateDirectory(target);
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(target, Path.GetFileName(f)));
        string data = Path.Combine(target, "data");
        var bytes = File.ReadAllBytes(data);
        for (int i = 0; i < bytes.Length; i++) bytes[i] ^= 0x5A;
        File.WriteAllBytes(data, bytes);
        var info = new FileInfo(data);
        File.WriteAllText(Path.Combine(target, "stamp"), $"{info.Length} {info.LastWriteTimeUtc.Ticks}");
        var lie = to.TryOpen(id) ?? throw new InvalidOperationException("the copied entry does not open");
        lie.ServesUncheckedForTests = true; // a modified node: it serves its bytes without the store's read check
        return lie;
    }
}
