using System.Buffers;
using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Exchange.Download;
using Swarm.Core.Wire;

namespace Swarm.Tests.Core.Exchange.Download;

/// <summary>
/// Builds the download side's state by hand, without a socket: a <see cref="BlockScheduler"/> over a layout of 256 KiB
/// pieces (two 128 KiB blocks each), and peers as <see cref="PeerState"/>s that are unchoking us and wanted. Gives back
/// every piece buffer it rented when disposed.
/// </summary>
internal sealed class DownloadKit : IDisposable
{
    public const int PieceSize = 256 * 1024;
    public const int Block = PieceLayout.BlockSize;
    private readonly List<PartialPiece> _handedOut = [];
    private int _nextPeer;

    public DownloadKit(int pieces, long bufferLimit = 64L << 20, int seed = 1)
    {
        Layout = new PieceLayout((long)pieces * PieceSize, PieceSize);
        Verified = new Bitfield(pieces);
        Buffers = new PieceBufferBudget(bufferLimit);
        Scheduler = new BlockScheduler(Layout, Verified, Buffers, new Random(seed));
    }

    public PieceLayout Layout { get; }
    public Bitfield Verified { get; }
    public PieceBufferBudget Buffers { get; }
    public BlockScheduler Scheduler { get; }

    /// <summary>A peer holding <paramref name="pieces"/> (have-all when none are given), unchoking us, wanted, with this pipeline depth.</summary>
    public PeerState Peer(int depth, params int[]? pieces)
    {
        int n = ++_nextPeer;
        var peer = new PeerState(Hash256.Of([(byte)n]), new IPEndPoint(IPAddress.Parse($"10.0.0.{n}"), 7400)) { PeerChoking = false, AmInterested = true, Depth = depth };
        if (pieces is null or { Length: 0 }) Scheduler.AddPeer(peer, null, seed: true);
        else
        {
            var bits = new Bitfield(Layout.PieceCount);
            foreach (int p in pieces) bits.Set(p);
            Scheduler.AddPeer(peer, bits.ToBytes(), seed: false);
        }
        return peer;
    }

    /// <summary>What the scheduler asks of the peer now (as the swarm's pump would), at time <paramref name="now"/>.</summary>
    public List<Request> Ask(PeerState peer, long now = 1_000)
    {
        var requests = new List<Request>();
        int want = BlockScheduler.Wanted(peer);
        if (want > 0) Scheduler.PickBlocks(peer, want, requests, now);
        return requests;
    }

    /// <summary>The peer sends block <paramref name="block"/> of <paramref name="piece"/>, filled with <paramref name="fill"/>.</summary>
    public BlockResult Deliver(PeerState from, int piece, int block, byte fill, out PeerState? cancelAt, out PartialPiece? complete) =>
        Deliver(from, piece, block, Enumerable.Repeat(fill, Layout.BlockLength(piece, block)).ToArray(), out cancelAt, out complete);

    public BlockResult Deliver(PeerState from, int piece, int block, byte[] data, out PeerState? cancelAt, out PartialPiece? complete)
    {
        var result = Scheduler.OnBlock(from, piece, block * Block, new ReadOnlySequence<byte>(data), out cancelAt, out complete);
        if (complete != null) _handedOut.Add(complete);
        return result;
    }

    public static Request RequestFor(int piece, int block) => new(piece, block * Block, Block);

    public void Dispose()
    {
        foreach (var p in _handedOut) p.Return(Buffers);
        Scheduler.ReturnAll();
    }
}
