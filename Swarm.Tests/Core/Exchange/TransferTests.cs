using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Storage;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Exchange;

/// <summary>Two or three in-process nodes on loopback, real sockets, real files.</summary>
public class TransferTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly EngineOptions Fast = new() { StallTimeout = TimeSpan.FromSeconds(20), ConnectTimeout = TimeSpan.FromSeconds(2) };

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(PieceLayout.MinPieceSize - 1)]
    [InlineData(PieceLayout.MinPieceSize)]
    [InlineData(PieceLayout.MinPieceSize + 1)]
    [InlineData(5 * 1024 * 1024 + 123)]
    public async Task DownloadsByteIdenticalContent(int size)
    {
        using var dir = new TempDirectory();
        string source = dir.WriteRandomFile("source.bin", size, seed: size);
        await using var seed = new TestNode(Fast);
        var content = await seed.SeedAsync(source);
        await using var getter = new TestNode(Fast, listen: false);

        var got = await getter.Engine.DownloadAsync(content.Id, [seed.EndPoint], null, Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        string output = dir.Combine("out", "copy.bin");
        got.Export(output);

        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(output));
        Assert.Equal(size, getter.Engine.Find(content.Id)!.BytesFromPeers);
    }

    [Fact]
    public async Task PeerSendingCorruptPiecesIsBannedAndPiecesComeFromAnotherPeer()
    {
        using var dir = new TempDirectory();
        string source = dir.WriteRandomFile("source.bin", 8 * 1024 * 1024 + 777);
        await using var good = new TestNode(Fast);
        var content = await good.SeedAsync(source);

        // A second holder of the same content whose data file was damaged on disk: it serves bad bytes.
        await using var liar = await CloneWithCorruptDataAsync(good, content.Id);
        await using var getter = new TestNode(Fast, listen: false);

        var got = await getter.Engine.DownloadAsync(content.Id, [liar.EndPoint, good.EndPoint], null, Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        string output = dir.Combine("copy.bin");
        got.Export(output);

        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(output));
        var swarm = getter.Engine.Find(content.Id)!;
        Assert.True(swarm.HashFailures >= 1, "the corrupt peer's pieces must fail verification");
        Assert.True(getter.Engine.Bans.IsBanned(liar.Key.NodeId), "the corrupt peer must be banned");
        Assert.False(getter.Engine.Bans.IsBanned(good.Key.NodeId));
        Assert.DoesNotContain(swarm.Sessions, s => s.Peer.NodeId == liar.Key.NodeId);
    }

    [Fact]
    public async Task OnlyACorruptPeerMeansFailureAndNothingUnverifiedIsStored()
    {
        using var dir = new TempDirectory();
        string source = dir.WriteRandomFile("source.bin", 2 * 1024 * 1024);
        await using var good = new TestNode(Fast);
        var content = await good.SeedAsync(source);
        await using var liar = await CloneWithCorruptDataAsync(good, content.Id);
        await using var getter = new TestNode(Fast, listen: false);

        var error = await Assert.ThrowsAsync<PeerUnavailableException>(() =>
            getter.Engine.DownloadAsync(content.Id, [liar.EndPoint], null, Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct));
        Assert.Contains(liar.EndPoint.ToString(), error.Message, StringComparison.Ordinal);
        Assert.Contains("banned", error.Message, StringComparison.Ordinal);
        var stored = getter.Engine.Find(content.Id)!.Content!;
        Assert.Equal(0, stored.Verified.Count);
    }

    [Fact]
    public async Task UnreachablePeersFailWithinBoundedTimeNamingEachPeer()
    {
        await using var getter = new TestNode(Fast with { DialAttempts = 2 }, listen: false);
        var closed1 = new IPEndPoint(IPAddress.Loopback, FreePort.Get());
        var closed2 = new IPEndPoint(IPAddress.Loopback, FreePort.Get());
        var id = new ContentId(Hash256.Random());
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<PeerUnavailableException>(() =>
            getter.Engine.DownloadAsync(id, [closed1, closed2], null, Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct));

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
        Assert.Contains(closed1.ToString(), error.Message, StringComparison.Ordinal);
        Assert.Contains(closed2.ToString(), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PartialContentResumesFetchingOnlyMissingPieces()
    {
        using var dir = new TempDirectory();
        string source = dir.WriteRandomFile("source.bin", 4 * 1024 * 1024);
        await using var seed = new TestNode(Fast);
        var content = await seed.SeedAsync(source);
        string getterDir = dir.Combine("getter");

        // Pre-load half the pieces into the getter's store, as a killed download would have left them.
        var store = new ContentStore(getterDir);
        var bytes = File.ReadAllBytes(source);
        using (var partial = store.OpenOrCreate(content.Manifest, content.Signature))
        {
            for (int i = 0; i < content.Layout.PieceCount; i += 2)
                Assert.True(partial.TryCommitPiece(i, bytes.AsSpan((int)content.Layout.PieceOffset(i), content.Layout.PieceLength(i))));
        }
        long already = 0;
        for (int i = 0; i < content.Layout.PieceCount; i += 2) already += content.Layout.PieceLength(i);

        await using var getter = new TestNode(Fast, getterDir, listen: false);
        var got = await getter.Engine.DownloadAsync(content.Id, [seed.EndPoint], null, Ct).WaitAsync(TimeSpan.FromSeconds(30), Ct);
        got.Export(dir.Combine("copy.bin"));

        Assert.Equal(bytes, File.ReadAllBytes(dir.Combine("copy.bin")));
        Assert.Equal(bytes.Length - already, getter.Engine.Find(content.Id)!.BytesFromPeers);
    }

    /// <summary>A node holding a copy of the seed's store entry with every byte of its data file flipped.</summary>
    private static async Task<TestNode> CloneWithCorruptDataAsync(TestNode source, ContentId id)
    {
        var liar = new TestNode(Fast);
        var from = Path.Combine(source.Store.ContentRoot, id.Hex);
        var to = Path.Combine(liar.Store.ContentRoot, id.Hex);
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        var data = File.ReadAllBytes(Path.Combine(to, "data"));
        for (int i = 0; i < data.Length; i++) data[i] ^= 0x5A;
        await File.WriteAllBytesAsync(Path.Combine(to, "data"), data, Ct);
        // A lying node does not care that its data changed: make its store believe the bytes are the verified ones.
        var info = new FileInfo(Path.Combine(to, "data"));
        await File.WriteAllTextAsync(Path.Combine(to, "stamp"), $"{info.Length} {info.LastWriteTimeUtc.Ticks}", Ct);
        var lie = liar.Store.TryOpen(id)!;
        lie.ServesUncheckedForTests = true; // a modified node: it serves its bytes without the store's read check
        liar.Engine.Serve(lie);
        return liar;
    }
}
