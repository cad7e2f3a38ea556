using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Threading.Channels;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Exchange.Download;
using Swarm.Core.Identity;
using Swarm.Core.Storage;
using Swarm.Core.Wire;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Exchange;

/// <summary>
/// Piece selection. <see cref="PiecePicker"/> on its own (random first, then rarest first from availability counts kept up to
/// date on connect / have / disconnect), and the block-level rules of <see cref="ContentSwarm"/> (finish started pieces
/// first, end game with at most two copies of a request) end to end: hand-driven seeds on raw sockets face a real
/// downloading node and record every request it sends them.
/// </summary>
public class PiecePickerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static Bitfield Bits(int length, IEnumerable<int> set)
    {
        var bits = new Bitfield(length);
        foreach (int i in set) bits.Set(i);
        return bits;
    }

    private static Bitfield Bits(int length, params int[] set) => Bits(length, (IEnumerable<int>)set);

    private static Func<int, bool> In(IEnumerable<int> set)
    {
        var s = set.ToHashSet();
        return s.Contains;
    }

    private static readonly Func<int, bool> All = _ => true;

    private static int[] Of(params int[] values) => values;

    // ---- PiecePicker ----

    [Fact]
    public void RarestPieceIsChosenOncePastTheRandomFirstPhase()
    {
        // Availability: pieces 0-5 three peers, 6-8 two, 9 one.
        for (int seed = 0; seed < 200; seed++)
        {
            var picker = new PiecePicker(10, new Random(seed));
            picker.AddPeer(Bits(10, Enumerable.Range(0, 10)));
            picker.AddPeer(Bits(10, Enumerable.Range(0, 9)));
            picker.AddPeer(Bits(10, Enumerable.Range(0, 6)));

            Assert.Equal(9, picker.Pick(All, All, PiecePicker.RandomFirstPieces));
            Assert.Equal(9, picker.Pick(All, All, 1000));
            // The rarest is not wanted (done or in progress) or the peer lacks it: the next rarest, among the tied ones.
            Assert.Contains(picker.Pick(All, i => i != 9, PiecePicker.RandomFirstPieces), Of(6, 7, 8));
            Assert.Contains(picker.Pick(i => i != 9, All, PiecePicker.RandomFirstPieces), Of(6, 7, 8));
            Assert.Equal(7, picker.Pick(In([1, 3, 7]), All, PiecePicker.RandomFirstPieces));
        }
    }

    [Fact]
    public void TiesAmongTheRarestAreBrokenAtRandomAndNeverInFavourOfACommonerPiece()
    {
        // Pieces 2, 5 and 11 are held by one peer, every other piece by two.
        var seen = new HashSet<int>();
        for (int seed = 0; seed < 300; seed++)
        {
            var picker = new PiecePicker(12, new Random(seed));
            picker.AddPeer(Bits(12, Enumerable.Range(0, 12)));
            picker.AddPeer(Bits(12, Enumerable.Range(0, 12).Where(i => i is not (2 or 5 or 11))));
            int pick = picker.Pick(All, All, PiecePicker.RandomFirstPieces);
            Assert.Contains(pick, Of(2, 5, 11));
            seen.Add(pick);
        }
        Assert.Equal(Of(2, 5, 11), seen.Order().ToArray());
    }

    [Fact]
    public void RandomFirstPhasePicksOnlyWantedPiecesThePeerHasAndNotOnlyTheRarest()
    {
        const int n = 16;
        int[] peerHas = [1, 3, 4, 6, 9, 12, 15];
        int[] wanted = [0, 1, 2, 4, 6, 9, 13, 15];
        int[] candidates = [.. peerHas.Intersect(wanted)]; // 1, 4, 6, 9, 15
        var seen = new HashSet<int>();
        for (int seed = 0; seed < 400; seed++)
        {
            var picker = new PiecePicker(n, new Random(seed));
            picker.AddPeer(Bits(n, Enumerable.Range(0, n)));
            picker.AddPeer(Bits(n, Enumerable.Range(0, n).Where(i => i != 9))); // 9 is the rarest candidate
            int done = seed % PiecePicker.RandomFirstPieces; // 0..3: still in the random phase
            int pick = picker.Pick(In(peerHas), In(wanted), done);
            Assert.Contains(pick, candidates);
            seen.Add(pick);
        }
        Assert.Equal(candidates.Order().ToArray(), seen.Order().ToArray()); // random: every candidate comes up, not just the rarest (9)
    }

    [Fact]
    public void PiecesNotWantedOrNotHeldByThePeerAreNeverPicked()
    {
        const int n = 40;
        for (int seed = 0; seed < 300; seed++)
        {
            var random = new Random(seed);
            var picker = new PiecePicker(n, new Random(seed + 1000));
            for (int p = 0; p < 5; p++) picker.AddPeer(Bits(n, Enumerable.Range(0, n).Where(_ => random.Next(2) == 0)));
            if (random.Next(3) == 0) picker.AddSeed();
            var has = Enumerable.Range(0, n).Where(_ => random.Next(3) == 0).ToHashSet();
            var wanted = Enumerable.Range(0, n).Where(_ => random.Next(2) == 0).ToHashSet();
            int done = random.Next(2 * PiecePicker.RandomFirstPieces);
            int pick = picker.Pick(has.Contains, wanted.Contains, done);
            var candidates = has.Intersect(wanted).ToList();
            if (candidates.Count == 0)
            {
                Assert.Equal(-1, pick);
                continue;
            }
            Assert.Contains(pick, candidates);
            if (done >= PiecePicker.RandomFirstPieces)
                Assert.Equal(candidates.Min(picker.Availability), picker.Availability(pick));
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(PiecePicker.RandomFirstPieces)]
    public void NothingToPickGivesMinusOne(int piecesDone)
    {
        var picker = new PiecePicker(8, new Random(1));
        picker.AddPeer(Bits(8, 0, 1, 2));
        Assert.Equal(-1, picker.Pick(In([5, 6]), In([0, 1, 2]), piecesDone)); // the peer has only pieces we no longer want
        Assert.Equal(-1, picker.Pick(All, _ => false, piecesDone));
        Assert.Equal(-1, picker.Pick(_ => false, All, piecesDone));
        Assert.Equal(-1, new PiecePicker(0, new Random(1)).Pick(All, All, piecesDone));
    }

    [Fact]
    public void AvailabilityFollowsBitfieldsHavesSeedsAndDisconnects()
    {
        const int n = 6;
        var picker = new PiecePicker(n, new Random(3));
        Assert.All(Enumerable.Range(0, n), i => Assert.Equal(0, picker.Availability(i)));

        // Peer a connects with pieces 0-3, peer b with nothing and then announces 3 and 4 one by one (its session's
        // bitfield is updated as the haves come, exactly as ContentSwarm does).
        var a = Bits(n, 0, 1, 2, 3);
        var b = new Bitfield(n);
        picker.AddPeer(a);
        picker.AddPeer(b);
        foreach (int piece in Of(3, 4)) { b.Set(piece); picker.AddHave(piece); }
        Assert.Equal(Of(1, 1, 1, 2, 1, 0), Enumerable.Range(0, n).Select(picker.Availability).ToArray());

        // A seed counts once for every piece and leaves the order alone.
        picker.AddSeed();
        Assert.Equal(Of(2, 2, 2, 3, 2, 1), Enumerable.Range(0, n).Select(picker.Availability).ToArray());
        Assert.Equal(5, picker.Pick(All, All, PiecePicker.RandomFirstPieces)); // only the seed has 5
        Assert.Contains(picker.Pick(All, i => i != 5, PiecePicker.RandomFirstPieces), Of(0, 1, 2, 4));

        // a leaves: pieces 0-2 are now held by the seed alone, as rare as 5.
        picker.RemovePeer(a);
        Assert.Equal(Of(1, 1, 1, 2, 2, 1), Enumerable.Range(0, n).Select(picker.Availability).ToArray());
        Assert.Contains(picker.Pick(All, i => i != 5, PiecePicker.RandomFirstPieces), Of(0, 1, 2));

        // b leaves with the bitfield its haves built: nothing is left over.
        picker.RemovePeer(b);
        picker.RemoveSeed();
        Assert.All(Enumerable.Range(0, n), i => Assert.Equal(0, picker.Availability(i)));

        // a comes back: counts are as if it had never left.
        picker.AddPeer(a);
        Assert.Equal(Of(1, 1, 1, 1, 0, 0), Enumerable.Range(0, n).Select(picker.Availability).ToArray());
    }

    [Fact]
    public void RandomConnectsHavesAndDisconnectsKeepCountsExactAndPicksRarest()
    {
        const int n = 50;
        var random = new Random(42);
        var picker = new PiecePicker(n, new Random(43));
        var peers = new List<Bitfield>();
        int seeds = 0;
        for (int step = 0; step < 3000; step++)
        {
            switch (random.Next(6))
            {
                case 0:
                    peers.Add(Bits(n, Enumerable.Range(0, n).Where(_ => random.Next(4) == 0)));
                    picker.AddPeer(peers[^1]);
                    break;
                case 1 when peers.Count > 0:
                    int leaving = random.Next(peers.Count);
                    picker.RemovePeer(peers[leaving]);
                    peers.RemoveAt(leaving);
                    break;
                case 2 when peers.Count > 0:
                    var peer = peers[random.Next(peers.Count)];
                    int piece = random.Next(n);
                    if (peer.Set(piece)) picker.AddHave(piece); // a repeated have is not counted twice (ContentSwarm.AddHave)
                    break;
                case 3:
                    picker.AddSeed();
                    seeds++;
                    break;
                case 4 when seeds > 0:
                    picker.RemoveSeed();
                    seeds--;
                    break;
                default:
                    var has = Enumerable.Range(0, n).Where(_ => random.Next(2) == 0).ToHashSet();
                    var wanted = Enumerable.Range(0, n).Where(_ => random.Next(2) == 0).ToHashSet();
                    int pick = picker.Pick(has.Contains, wanted.Contains, PiecePicker.RandomFirstPieces + random.Next(10));
                    var candidates = has.Intersect(wanted).ToList();
                    if (candidates.Count == 0) Assert.Equal(-1, pick);
                    else
                    {
                        Assert.Contains(pick, candidates);
                        Assert.Equal(candidates.Min(i => peers.Count(p => p[i])), peers.Count(p => p[pick]));
                    }
                    break;
            }
            for (int i = 0; i < n; i++)
                Assert.True(picker.Availability(i) == seeds + peers.Count(p => p[i]), $"step {step}: piece {i} has availability {picker.Availability(i)}, expected {seeds + peers.Count(p => p[i])}");
        }
    }

    // ---- ContentSwarm picking, end to end against hand-driven seeds ----

    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(5);
    private static readonly EngineOptions Options = new() { StallTimeout = TimeSpan.FromSeconds(20), ConnectTimeout = TimeSpan.FromSeconds(2) };

    [Fact]
    public async Task RarestFirstUsesAvailabilityFromBitfieldsHavesSeedsAndDisconnects()
    {
        // 16 pieces of 256 KiB (2 blocks each); the node already holds 0-3, so it is past the random-first phase.
        using var dir = new TempDirectory();
        using var ingester = NodeKey.Generate();
        var content = TestContent.Create(ingester, pieceCount: 16, pieceSize: 256 * 1024, seed: 5);
        string nodeDir = dir.Combine("node");
        using (var partial = new ContentStore(nodeDir).OpenOrCreate(content.Manifest, content.Signature))
            for (int i = 0; i < PiecePicker.RandomFirstPieces; i++) Assert.True(partial.TryCommitPiece(i, content.Piece(i)));
        await using var node = new TestNode(Options, nodeDir, listen: false);

        await using var a = FakePeer.Listen();
        await using var b = FakePeer.Listen();
        await using var c = FakePeer.Listen();
        await using var d = FakePeer.Listen();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var download = node.Engine.DownloadAsync(content.Id, [a.EndPoint, b.EndPoint, c.EndPoint, d.EndPoint], null, stop.Token);
        await Task.WhenAll(a.AcceptAsync(content.Id), b.AcceptAsync(content.Id), c.AcceptAsync(content.Id), d.AcceptAsync(content.Id));

        // a holds everything (as a bitfield: counted per piece), b holds 12 and 13, c announces 4-11 by have messages,
        // d is a seed (have-all: counts once for every piece) that never unchokes.
        await a.SendAsync(RawPeer.Frame(new BitfieldMessage(Bits(16, Enumerable.Range(0, 16)).ToBytes())));
        await b.SendAsync(RawPeer.Frame(new BitfieldMessage(Bits(16, 12, 13).ToBytes())));
        await c.SendAsync(RawPeer.Frame(MessageKind.HaveNone, []));
        for (int i = 4; i <= 11; i++) await c.SendAsync(RawPeer.Frame(new Have(i)));
        await d.SendAsync(RawPeer.Frame(MessageKind.HaveAll, []));
        foreach (var peer in new[] { a, b, c, d }) await peer.SyncAsync(); // the node has processed all of the above

        // b leaves: 12 and 13 drop to one holder, as rare as 14 and 15 (which only a has). 4-11 have two holders.
        await b.DisposeAsync();
        await Poll.UntilAsync(() => node.Engine.Find(content.Id)!.PeerCount == 3, Wait, "b's session to be detached");

        await a.SendAsync(RawPeer.Frame(MessageKind.Unchoke, []));
        var requests = await a.CollectRequestsAsync(Quiet, Wait);

        var order = requests.Select(r => r.Piece).Distinct().ToList();
        Assert.True(order.Count >= 2, $"expected at least two pieces requested, got {Describe(requests)}");
        Assert.DoesNotContain(order, p => p < PiecePicker.RandomFirstPieces); // verified pieces are never requested
        int[] rarest = [12, 13, 14, 15];
        int leading = Math.Min(order.Count, rarest.Length);
        Assert.True(order.Take(leading).All(rarest.Contains), $"the first pieces requested must be the rarest ({string.Join(", ", rarest)}); requests: {Describe(requests)}");
        Assert.True(order.Skip(leading).All(p => p is >= 4 and <= 11), $"after the rarest come the pieces with two holders; requests: {Describe(requests)}");
        Assert.False(download.IsCompleted);
        await stop.CancelAsync();
        await Record.ExceptionAsync(() => download.WaitAsync(Wait, Ct)); // how it ends is SwarmResilienceTests' business
    }

    [Fact]
    public async Task BlocksOfStartedPiecesAreRequestedBeforeAnyNewPiece()
    {
        // 6 pieces of 1 MiB: 8 blocks each.
        using var ingester = NodeKey.Generate();
        var content = TestContent.Create(ingester, pieceCount: 6, pieceSize: 1024 * 1024, seed: 6);
        await using var node = new TestNode(Options, listen: false);
        await using var a = FakePeer.Listen();
        await using var b = FakePeer.Listen();
        var download = node.Engine.DownloadAsync(content.Id, [a.EndPoint, b.EndPoint], null, Ct);
        await Task.WhenAll(a.AcceptAsync(content.Id), b.AcceptAsync(content.Id));

        await a.SendAsync(RawPeer.Frame(new Hashes(content.Manifest.Encoded, content.Signature)));
        await a.SendAsync(RawPeer.Frame(MessageKind.HaveAll, []));
        await b.SendAsync(RawPeer.Frame(MessageKind.HaveAll, []));
        await a.ExpectAsync(MessageKind.Interested, Wait);
        await b.ExpectAsync(MessageKind.Interested, Wait); // b stays choking for now

        await a.SendAsync(RawPeer.Frame(MessageKind.Unchoke, []));
        var fromA = await a.CollectRequestsAsync(Quiet, Wait);
        Assert.True(fromA.Count >= PeerSession.MinDepth, $"a got {Describe(fromA)}");
        // a delivers three blocks of the first piece it was asked for, after choking (so nothing new is asked of it), and leaves.
        int first = fromA[0].Piece;
        var delivered = fromA.Where(r => r.Piece == first).Take(3).ToList();
        Assert.Equal(3, delivered.Count);
        await a.SendAsync(RawPeer.Frame(MessageKind.Choke, []));
        foreach (var r in delivered) await a.SendAsync(content.BlockFrame(r));
        var swarm = node.Engine.Find(content.Id)!;
        await Poll.UntilAsync(() => swarm.BytesFromPeers == 3L * PieceLayout.BlockSize, Wait, "a's three blocks to arrive");
        await a.DisposeAsync();
        await Poll.UntilAsync(() => swarm.PeerCount == 1, Wait, "a's session to be detached");

        // Every piece a was asked for is started; what is left of them must all be asked of b before anything new.
        var started = fromA.Select(r => r.Piece).ToHashSet();
        var deliveredKeys = delivered.Select(Key).ToHashSet();
        var leftOfStarted = started.SelectMany(p => Enumerable.Range(0, content.Layout.BlockCount(p)).Select(blk => (p, blk * PieceLayout.BlockSize)))
            .Where(k => !deliveredKeys.Contains(k)).ToHashSet();

        await b.SendAsync(RawPeer.Frame(MessageKind.Unchoke, []));
        var fromB = await b.ServeUntilAsync(content, () => download.IsCompleted, TimeSpan.FromSeconds(8));
        var got = await download.WaitAsync(Wait, Ct);

        Assert.DoesNotContain(fromB, r => deliveredKeys.Contains(Key(r))); // nothing already received is asked again
        Assert.Equal(fromB.Count, fromB.Select(Key).Distinct().Count());
        int firstNew = fromB.FindIndex(r => !started.Contains(r.Piece));
        var beforeNew = (firstNew < 0 ? fromB : fromB.Take(firstNew)).Select(Key).ToHashSet();
        Assert.True(leftOfStarted.IsSubsetOf(beforeNew),
            $"b was asked for a new piece (request #{firstNew}) before the started pieces {string.Join(", ", started)} were finished; missing {string.Join(", ", leftOfStarted.Except(beforeNew))}; b's requests: {Describe(fromB)}");
        Assert.True(content.Data.AsSpan().SequenceEqual(Exported(got)), "the downloaded bytes differ from the content");
    }

    [Fact]
    public async Task EndGameAsksAtMostTwoPeersForABlockAndCancelsTheOtherCopy()
    {
        // 2 pieces of 512 KiB: 8 blocks of 128 KiB. Three seeds; every missing piece is in flight after the first two.
        using var ingester = NodeKey.Generate();
        var content = TestContent.Create(ingester, pieceCount: 2, pieceSize: 512 * 1024, seed: 8);
        await using var node = new TestNode(Options, listen: false);
        FakePeer[] peers = [FakePeer.Listen(), FakePeer.Listen(), FakePeer.Listen()];
        try
        {
            var download = node.Engine.DownloadAsync(content.Id, [.. peers.Select(p => p.EndPoint)], null, Ct);
            await Task.WhenAll(peers.Select(p => p.AcceptAsync(content.Id)));
            await peers[0].SendAsync(RawPeer.Frame(new Hashes(content.Manifest.Encoded, content.Signature)));
            foreach (var p in peers) await p.SendAsync(RawPeer.Frame(MessageKind.HaveAll, []));
            foreach (var p in peers) await p.ExpectAsync(MessageKind.Interested, Wait);

            // Unchoke one after another, each collecting what it is asked before the next one starts.
            var initial = new List<Request>[peers.Length];
            for (int i = 0; i < peers.Length; i++)
            {
                await peers[i].SendAsync(RawPeer.Frame(MessageKind.Unchoke, []));
                initial[i] = await peers[i].CollectRequestsAsync(Quiet, Wait, allowNone: i > 0);
            }
            var initialHolders = Holders(initial);
            Assert.Equal(content.Layout.PieceCount * 4, initialHolders.Count); // every block is in flight
            Assert.True(initialHolders.Values.Any(h => h.Count == 2), $"end game never asked a second peer: {string.Join("; ", initial.Select(Describe))}");

            // Now they answer, at different speeds, so second copies overtake first ones. The last block is held back so
            // the download stays open (it closes its connections when done) until every cancel has been checked.
            var last = new Request(content.Layout.PieceCount - 1, 3 * PieceLayout.BlockSize, PieceLayout.BlockSize);
            var swarm = node.Engine.Find(content.Id)!;
            int[] delaysMs = [150, 60, 5];
            var serving = peers.Select((p, i) => p.ServeUntilAsync(content, () => swarm.BytesFromPeers == content.Data.Length - last.Length,
                TimeSpan.FromSeconds(8), TimeSpan.FromMilliseconds(delaysMs[i]), alreadyAsked: initial[i], hold: r => r == last)).ToList();
            var all = await Task.WhenAll(serving);
            foreach (var p in peers) await p.SyncAsync(); // whatever the node sent each peer before this is in

            var holders = Holders(all);
            string Log() => string.Join(" | ", all.Select((r, i) => $"peer {i}: asked {Describe(r)}; cancelled {string.Join(" ", peers[i].CancelledBlocks.Select(c => $"{c.Piece}/{c.Offset / PieceLayout.BlockSize}"))}"));
            foreach (var (block, who) in holders)
            {
                Assert.True(who.Count <= 2, $"block {block} was requested from {who.Count} peers; {Log()}");
                int asked = all.Select(r => r.Count(x => Key(x) == block)).Sum();
                Assert.True(asked == who.Count, $"block {block} was requested twice from the same peer; {Log()}");
            }
            // One copy of each doubly requested block arrived first: the other peer, and nobody else, gets a cancel.
            bool CancelsAsExpected() => holders.All(h => peers.Count(p => p.CancelledBlocks.Contains(h.Key)) == (h.Key == Key(last) ? 0 : h.Value.Count - 1));
            await Record.ExceptionAsync(() => Poll.UntilAsync(CancelsAsExpected, TimeSpan.FromSeconds(2), "cancels"));
            Assert.True(CancelsAsExpected(), $"every block asked of two peers must be cancelled at exactly the one that did not deliver it; {Log()}");

            // The held-back block completes the download.
            var holder = peers[Array.FindIndex(all, r => r.Contains(last))];
            await holder.SendAsync(content.BlockFrame(last));
            var got = await download.WaitAsync(Wait, Ct);
            Assert.True(content.Data.AsSpan().SequenceEqual(Exported(got)), "the downloaded bytes differ from the content");
        }
        finally
        {
            foreach (var p in peers) await p.DisposeAsync();
        }
    }

    private static byte[] Exported(StoredContent content)
    {
        using var dir = new TempDirectory();
        content.Export(dir.Combine("out.bin"));
        return File.ReadAllBytes(dir.Combine("out.bin"));
    }

    private static (int Piece, int Offset) Key(Request r) => (r.Piece, r.Offset);

    private static Dictionary<(int, int), HashSet<int>> Holders(IReadOnlyList<List<Request>> perPeer)
    {
        var holders = new Dictionary<(int, int), HashSet<int>>();
        for (int i = 0; i < perPeer.Count; i++)
            foreach (var r in perPeer[i])
            {
                if (!holders.TryGetValue(Key(r), out var set)) holders[Key(r)] = set = [];
                set.Add(i);
            }
        return holders;
    }

    private static string Describe(IEnumerable<Request> requests) => string.Join(" ", requests.Select(r => $"{r.Piece}/{r.Offset / PieceLayout.BlockSize}"));
}

/// <summary>Content made in memory with any piece size (the store would choose 256 KiB for small files).</summary>
file sealed class TestContent
{
    private TestContent(Manifest manifest, byte[] signature, byte[] data)
    {
        Manifest = manifest;
        Signature = signature;
        Data = data;
    }

    public Manifest Manifest { get; }
    public byte[] Signature { get; }
    public byte[] Data { get; }
    public ContentId Id => Manifest.Id;
    public PieceLayout Layout => Manifest.Layout;

    public static TestContent Create(NodeKey ingester, int pieceCount, int pieceSize, int seed)
    {
        var data = new byte[(long)pieceCount * pieceSize];
        new Random(seed).NextBytes(data);
        var hashes = new byte[pieceCount * Hash256.Size];
        for (int i = 0; i < pieceCount; i++) SHA256.HashData(data.AsSpan(i * pieceSize, pieceSize), hashes.AsSpan(i * Hash256.Size));
        var manifest = new Manifest(data.Length, pieceSize, hashes, ingester.PublicKey);
        return new TestContent(manifest, ingester.Sign(manifest.SignedPayload()), data);
    }

    public ReadOnlySpan<byte> Piece(int piece) => Data.AsSpan((int)Layout.PieceOffset(piece), Layout.PieceLength(piece));

    public byte[] BlockFrame(Request r) => RawPeer.BlockFrame(new BlockHeader(r.Piece, r.Offset), Data.AsSpan((int)Layout.PieceOffset(r.Piece) + r.Offset, r.Length));
}

/// <summary>
/// A hand-driven peer that a real node dials: it listens once, runs the acceptor's side of the handshake by hand, and
/// from then on a reader task queues every frame the node sends, so a test can both send and observe at any time.
/// </summary>
file sealed class FakePeer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly NodeKey _key = NodeKey.Generate();
    private readonly Channel<RawFrame> _frames = Channel.CreateUnbounded<RawFrame>();
    private readonly HashSet<MessageKind> _seen = [];
    private RawPeer? _peer;
    private Task _reader = Task.CompletedTask;
    private int _disposed;

    private FakePeer(Socket listener)
    {
        _listener = listener;
        EndPoint = (IPEndPoint)listener.LocalEndPoint!;
    }

    public IPEndPoint EndPoint { get; }

    private readonly HashSet<(int Piece, int Offset)> _cancels = [];

    /// <summary>Blocks the node cancelled with this peer (piece, offset).</summary>
    public HashSet<(int Piece, int Offset)> CancelledBlocks
    {
        get { lock (_cancels) return [.. _cancels]; }
    }


    public static FakePeer Listen()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4);
        return new FakePeer(listener);
    }

    /// <summary>Accepts the node's connection (then stops listening, so redials are refused) and completes the handshake.</summary>
    public async Task AcceptAsync(ContentId content)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(TimeSpan.FromSeconds(5));
        var socket = await _listener.AcceptAsync(cts.Token);
        _listener.Dispose();
        socket.NoDelay = true;
        _peer = RawPeer.Wrap(socket);
        await _peer.AcceptAdmissionAsync(_key);
        var timeout = TimeSpan.FromSeconds(5);
        var hello = (await _peer.ExpectFrameAsync(MessageKind.Hello, timeout)).Decode<Hello>();
        Assert.Equal(content.Value, hello.ContentId);
        byte[] nonce = RandomNumberGenerator.GetBytes(Hello.NonceLength);
        await _peer.SendMessageAsync(new Hello(WireLimits.ProtocolVersion, _key.NodeId, _key.PublicKey, nonce, content.Value, EndPoint.Port));
        await _peer.SendMessageAsync(new HelloProof(_key.Sign(RawPeer.HandshakePayload(hello.Nonce, nonce, content.Value, _key.NodeId))));
        var proof = (await _peer.ExpectFrameAsync(MessageKind.HelloProof, timeout)).Decode<HelloProof>();
        Assert.True(EcdsaSignature.Verify(hello.PublicKey, RawPeer.HandshakePayload(nonce, hello.Nonce, content.Value, hello.NodeId), proof.Signature));
        _reader = Task.Run(ReadLoopAsync);
    }

    private async Task ReadLoopAsync()
    {
        try
        {
            while (true)
            {
                RawFrame? frame;
                try
                {
                    frame = await _peer!.ReadFrameAsync(TimeSpan.FromSeconds(30));
                }
                catch (TimeoutException)
                {
                    continue;
                }
                if (frame == null) break;
                lock (_seen) _seen.Add(frame.Value.Kind);
                if (frame.Value.Kind == MessageKind.Cancel)
                {
                    var c = frame.Value.Decode<Cancel>();
                    lock (_cancels) _cancels.Add((c.Piece, c.Offset));
                }
                _frames.Writer.TryWrite(frame.Value);
            }
        }
        catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException or System.Net.Sockets.SocketException or InvalidDataException)
        {
        }
        finally
        {
            _frames.Writer.TryComplete();
        }
    }

    public Task SendAsync(byte[] frame) => _peer!.SendAsync(frame);

    /// <summary>The next frame from the node other than a keep-alive, or null on close or after <paramref name="timeout"/>.</summary>
    public async Task<RawFrame?> NextAsync(TimeSpan timeout)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        cts.CancelAfter(timeout);
        try
        {
            while (await _frames.Reader.WaitToReadAsync(cts.Token))
                while (_frames.Reader.TryRead(out var frame))
                    if (frame.Kind != MessageKind.KeepAlive) return frame;
            return null;
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Skips frames until one of <paramref name="kind"/>; fails on close or timeout.</summary>
    public async Task<RawFrame> ExpectAsync(MessageKind kind, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var frame = await NextAsync(timeout - clock.Elapsed);
            if (frame == null) break;
            if (frame.Value.Kind == kind) return frame.Value;
        }
        throw new TimeoutException($"no {kind} from the node within {timeout.TotalSeconds:0.#} s");
    }

    /// <summary>
    /// Asks for the manifest and waits for it: the node handles a connection's frames in order, so once the answer is
    /// here everything sent before it has been processed.
    /// </summary>
    public async Task SyncAsync()
    {
        await SendAsync(RawPeer.Frame(MessageKind.HashesRequest, []));
        await ExpectAsync(MessageKind.Hashes, TimeSpan.FromSeconds(5));
    }

    /// <summary>Collects request frames until none came for <paramref name="quiet"/> (after at least one, unless <paramref name="allowNone"/>).</summary>
    public async Task<List<Request>> CollectRequestsAsync(TimeSpan quiet, TimeSpan timeout, bool allowNone = false)
    {
        var requests = new List<Request>();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var frame = await NextAsync(requests.Count == 0 && !allowNone ? timeout - clock.Elapsed : quiet);
            if (frame == null) return requests.Count > 0 || allowNone ? requests : throw new TimeoutException("the node sent no request");
            if (frame.Value.Kind == MessageKind.Request) requests.Add(frame.Value.Decode<Request>());
        }
        return requests;
    }

    /// <summary>
    /// Serves requests in order (those in <paramref name="alreadyAsked"/> first) with <paramref name="delay"/> per block,
    /// skipping cancelled ones and those <paramref name="hold"/> selects (never served), until
    /// <paramref name="done"/> holds. Returns every request received, the already asked included.
    /// </summary>
    public async Task<List<Request>> ServeUntilAsync(TestContent content, Func<bool> done, TimeSpan timeout, TimeSpan delay = default,
        List<Request>? alreadyAsked = null, Func<Request, bool>? hold = null)
    {
        var all = new List<Request>(alreadyAsked ?? []);
        var queue = new Queue<Request>(all);
        void Handle(RawFrame frame)
        {
            if (frame.Kind != MessageKind.Request) return;
            var r = frame.Decode<Request>();
            all.Add(r);
            queue.Enqueue(r);
        }
        var clock = Stopwatch.StartNew();
        while (!done())
        {
            if (clock.Elapsed > timeout) throw new TimeoutException($"the download did not finish within {timeout.TotalSeconds:0} s");
            while (_frames.Reader.TryRead(out var frame)) Handle(frame);
            if (!queue.TryDequeue(out var next))
            {
                if (await NextAsync(TimeSpan.FromMilliseconds(50)) is { } f) Handle(f);
                continue;
            }
            bool cancelled;
            lock (_cancels) cancelled = _cancels.Contains((next.Piece, next.Offset));
            if (cancelled) continue;
            if (hold != null && hold(next)) continue;
            if (delay > TimeSpan.Zero) await Task.Delay(delay, TestContext.Current.CancellationToken);
            await SendAsync(content.BlockFrame(next));
        }
        return all;
    }

    /// <summary>Whether the node has sent a frame of this kind (read by the reader task, consumed or not).</summary>
    public bool HasSeen(MessageKind kind)
    {
        lock (_seen) return _seen.Contains(kind);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _listener.Dispose();
        if (_peer != null) await _peer.DisposeAsync();
        await _reader.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _key.Dispose();
    }
}
