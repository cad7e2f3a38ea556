using Swarm.Core.Exchange;
using Swarm.Core.Exchange.Download;
using Swarm.Core.Wire;
using static Swarm.Tests.Core.Exchange.Download.DownloadKit;

namespace Swarm.Tests.Core.Exchange.Download;

/// <summary>
/// <see cref="BlockScheduler"/> alone, with hand-built peer state and no socket: which requests it returns for a peer, and
/// what becomes of them when blocks, rejects, chokes and timeouts come back. (End to end, against real nodes: PiecePickerTests.)
/// </summary>
public class BlockSchedulerTests
{
    [Fact]
    public void PastTheRandomPhaseAPeerIsAskedForTheRarestPieceItHoldsFirst()
    {
        using var kit = new DownloadKit(pieces: 8);
        for (int i = 0; i < PiecePicker.RandomFirstPieces; i++) kit.Verified.Set(i); // pieces 0-3 done: rarest first from now on
        var a = kit.Peer(depth: 2, 4, 5, 6, 7);
        kit.Peer(depth: 2, 4, 5, 6);
        kit.Peer(depth: 2, 4, 5);
        // Held by: piece 7 one peer, 6 two, 4 and 5 three.
        Assert.Equal(new[] { RequestFor(7, 0), RequestFor(7, 1) }, kit.Ask(a));
        a.Depth = 4;
        Assert.Equal(new[] { RequestFor(6, 0), RequestFor(6, 1) }, kit.Ask(a));
        Assert.Equal(4, a.Outstanding.Count);
    }

    [Fact]
    public void StartedPiecesAreFinishedFirstAndNoBlockIsAskedTwiceOutsideEndGame()
    {
        using var kit = new DownloadKit(pieces: 8);
        var a = kit.Peer(depth: 3);
        var b = kit.Peer(depth: 4);
        var c = kit.Peer(depth: 4);

        var fromA = kit.Ask(a);
        Assert.Equal(3, fromA.Count); // one whole piece and the first block of a second
        int started = fromA[2].Piece;
        Assert.Equal(0, fromA[2].Offset);
        var fromB = kit.Ask(b);
        Assert.Equal(RequestFor(started, 1), fromB[0]); // b finishes the piece a started before it starts its own
        var fromC = kit.Ask(c);

        var all = fromA.Concat(fromB).Concat(fromC).ToList();
        Assert.Equal(11, all.Count); // 16 blocks, 11 asked for: not end game
        Assert.Equal(all.Count, all.Distinct().Count());
        Assert.Equal(6, kit.Scheduler.Partials.Count); // six pieces started, two of them finished by the next peer
        Assert.Empty(kit.Ask(c)); // depth reached
    }

    [Fact]
    public void InEndGameASecondPeerGetsTheUndeliveredBlocksAndTheFirstCopyToArriveCancelsTheOther()
    {
        using var kit = new DownloadKit(pieces: 2);
        var a = kit.Peer(depth: 8);
        var b = kit.Peer(depth: 8);
        var c = kit.Peer(depth: 8);

        var fromA = kit.Ask(a);
        Assert.Equal(4, fromA.Count); // every block of both pieces: every missing piece is in flight
        Assert.Equal(BlockResult.Stored, kit.Deliver(a, fromA[0].Piece, 0, 1, out var cancelAt, out _));
        Assert.Null(cancelAt);

        var fromB = kit.Ask(b);
        Assert.Equal(fromA.Skip(1), fromB); // the three undelivered blocks, a second time
        Assert.Empty(kit.Ask(c)); // two copies at most

        var (piece, block) = (fromB[0].Piece, fromB[0].Offset / Block);
        Assert.Equal(BlockResult.Stored, kit.Deliver(b, piece, block, 2, out cancelAt, out _));
        Assert.Same(a, cancelAt); // the caller sends a its cancel
        Assert.DoesNotContain(PeerState.BlockKey(piece, block * Block), a.Outstanding.Keys);
        Assert.Equal(BlockResult.Unexpected, kit.Deliver(a, piece, block, 1, out _, out _)); // a's copy, sent before the cancel reached it: wasted
        Assert.Equal(2, b.Outstanding.Count);
    }

    [Fact]
    public void APieceIsHandedOutForVerificationWhenItsLastBlockArrivesAndPickedAgainIfItFails()
    {
        using var kit = new DownloadKit(pieces: 1);
        var a = kit.Peer(depth: 1);
        var b = kit.Peer(depth: 1);
        Assert.Equal(new[] { RequestFor(0, 0) }, kit.Ask(a));
        Assert.Equal(new[] { RequestFor(0, 1) }, kit.Ask(b)); // joins the started piece
        Assert.Equal(BlockResult.Stored, kit.Deliver(a, 0, 0, 1, out _, out var complete));
        Assert.Null(complete);
        Assert.Equal(BlockResult.Stored, kit.Deliver(b, 0, 1, 2, out _, out complete));
        Assert.NotNull(complete);
        Assert.Equal(new[] { a, b }, complete.Contributors.OrderBy(p => p.Address.ToString()));
        Assert.Equal(1, kit.Scheduler.VerifyingCount);
        Assert.Empty(kit.Ask(a)); // being verified: not picked again
        kit.Scheduler.EndVerify(0); // it failed
        Assert.Equal(new[] { RequestFor(0, 0) }, kit.Ask(a));
    }

    [Fact]
    public void APeerThatChokesGetsNoMoreRequestsAndThoseItRejectsAsChokedGoToAnotherPeer()
    {
        using var kit = new DownloadKit(pieces: 4);
        var a = kit.Peer(depth: 2);
        var b = kit.Peer(depth: 2);
        var fromA = kit.Ask(a);
        int piece = fromA[0].Piece;
        Assert.Equal(new[] { RequestFor(piece, 0), RequestFor(piece, 1) }, fromA);

        a.PeerChoking = true; // what a Choke frame does
        a.Depth = 8;
        Assert.Equal(0, BlockScheduler.Wanted(a));
        Assert.Empty(kit.Ask(a));
        // A choking peer answers each queued request with a reject (reason Choked): the blocks go back to the pool.
        foreach (var r in fromA) Assert.Null(kit.Scheduler.OnReject(a, new Reject(r.Piece, r.Offset, r.Length, RejectReason.Choked), 1_000));
        Assert.Empty(a.Outstanding);

        Assert.Equal(fromA, kit.Ask(b)); // b finishes the piece a started
        Assert.True(a.PeerHas(piece)); // a choke is no refusal: a may be asked for the piece again once it unchokes
    }

    [Fact]
    public void APieceThePeerSaysItDoesNotHoldGoesBackWithItsOtherBlocksAndIsAskedOfOthers()
    {
        using var kit = new DownloadKit(pieces: 4);
        var a = kit.Peer(depth: 2);
        var b = kit.Peer(depth: 2);
        var fromA = kit.Ask(a);
        int piece = fromA[0].Piece;

        var cancels = kit.Scheduler.OnReject(a, new Reject(piece, 0, Block, RejectReason.NotAvailable), Environment.TickCount64);
        Assert.Equal(new[] { new Cancel(piece, Block, Block) }, cancels); // its other request for the piece is withdrawn
        Assert.Empty(a.Outstanding);
        Assert.False(a.PeerHas(piece)); // not asked for it again for a while
        Assert.Contains(piece, a.NotHeld!);

        var again = kit.Ask(a);
        Assert.Equal(2, again.Count);
        Assert.DoesNotContain(again, r => r.Piece == piece);
        Assert.Equal(fromA, kit.Ask(b));
    }

    [Fact]
    public void RequestsUnansweredPastTheTimeoutGoBackAndTheSlowPeerIsAskedForLittle()
    {
        using var kit = new DownloadKit(pieces: 4);
        var a = kit.Peer(depth: 16);
        var b = kit.Peer(depth: 2);
        a.Depth = 2;
        var fromA = kit.Ask(a, now: 1_000);
        a.Depth = 16;

        kit.Scheduler.ExpireRequests(a, now: 20_000, timeoutMs: 30_000);
        Assert.Equal(2, a.Outstanding.Count); // not yet
        kit.Scheduler.ExpireRequests(a, now: 31_001, timeoutMs: 30_000);
        Assert.Empty(a.Outstanding);
        Assert.Equal(PeerState.MinDepth, a.Depth);
        Assert.Equal(fromA, kit.Ask(b, now: 31_001));
    }

    [Fact]
    public void APeerThatLeavesGivesItsRequestsBackAndNoLongerCountsForRarity()
    {
        using var kit = new DownloadKit(pieces: 4);
        var a = kit.Peer(depth: 2, 0, 1, 2, 3);
        var b = kit.Peer(depth: 2, 0, 1, 2, 3);
        var fromA = kit.Ask(a);
        Assert.Equal(2, kit.Scheduler.Picker.Availability(0));

        a.Detached = true;
        kit.Scheduler.Detach(a);
        Assert.Empty(a.Outstanding);
        Assert.Equal(1, kit.Scheduler.Picker.Availability(0));
        Assert.Equal(fromA, kit.Ask(b));
        a.Depth = 8;
        Assert.Empty(kit.Ask(a)); // gone: never asked again
    }

    [Fact]
    public void NewPiecesWaitForPieceMemoryButASwarmHoldingNoneMayAlwaysStartOne()
    {
        using var kit = new DownloadKit(pieces: 4, bufferLimit: 1);
        var a = kit.Peer(depth: 8);
        var fromA = kit.Ask(a);
        Assert.Equal(2, fromA.Count); // one piece, past the limit, and no more
        Assert.Single(kit.Scheduler.Partials);
        Assert.Equal(PieceSize, kit.Buffers.InUse);
    }

    [Fact]
    public void ABannedPeersBlocksAreDroppedFromThePieceBeingAssembled()
    {
        using var kit = new DownloadKit(pieces: 1);
        var a = kit.Peer(depth: 1);
        var b = kit.Peer(depth: 1);
        kit.Ask(a);
        kit.Ask(b);
        Assert.Equal(BlockResult.Stored, kit.Deliver(a, 0, 0, 1, out _, out _));
        var partial = Assert.Single(kit.Scheduler.Partials);
        Assert.Equal(1, partial.ReceivedCount);

        kit.Scheduler.DropContributions(a);
        Assert.Equal(0, partial.ReceivedCount);
        Assert.Empty(partial.Contributors);
        var c = kit.Peer(depth: 1);
        Assert.Equal(new[] { RequestFor(0, 0) }, kit.Ask(c)); // block 0 is wanted again
    }
}
