using System.Security.Cryptography;
using Swarm.Core.Exchange;
using Swarm.Core.Exchange.Download;
using static Swarm.Tests.Core.Exchange.Download.DownloadKit;

namespace Swarm.Tests.Core.Exchange.Download;

/// <summary>
/// Parole and smart ban without sockets: pieces assembled by the real <see cref="BlockScheduler"/> from hand-built peers,
/// checked against a known SHA-256 as the store checks them, and judged by <see cref="SmartBan"/>. (End to end, with a
/// lying node among real ones: SwarmResilienceTests and TransferTests.)
/// </summary>
public class SmartBanTests
{
    private static readonly byte[] Good = RandomNumberGenerator.GetBytes(PieceSize);
    private static readonly byte[] GoodHash = SHA256.HashData(Good);

    private static byte[] GoodBlock(int block) => Good.AsSpan(block * Block, Block).ToArray();

    private static byte[] BadBlock(int block)
    {
        var bytes = GoodBlock(block);
        bytes[100] ^= 0xFF;
        return bytes;
    }

    /// <summary>Checks the piece as the store does, then judges it (digests only when smart ban needs them, as the swarm does).</summary>
    private static List<PeerState>? Check(SmartBan ban, BlockScheduler scheduler, PartialPiece piece, out bool verified)
    {
        verified = SHA256.HashData(piece.Data).AsSpan().SequenceEqual(GoodHash);
        var digests = SmartBan.NeedsDigests(piece, verified, ban.IsSuspected(piece.Index)) ? SmartBan.Digests(piece) : null;
        var banned = ban.Judge(piece, verified, digests);
        scheduler.EndVerify(piece.Index);
        return banned;
    }

    /// <summary>Each peer in turn is asked what the scheduler gives it, and sends <paramref name="sends"/>' bytes for its block.</summary>
    private static PartialPiece Assemble(DownloadKit kit, params (PeerState Peer, int Block, byte[] Data)[] sends)
    {
        PartialPiece? complete = null;
        foreach (var (peer, block, data) in sends)
        {
            kit.Ask(peer);
            Assert.True(peer.Outstanding.ContainsKey(PeerState.BlockKey(0, block * Block)), $"{peer} was not asked for block {block}");
            Assert.Equal(BlockResult.Stored, kit.Deliver(peer, 0, block, data, out _, out complete));
        }
        return Assert.IsType<PartialPiece>(complete);
    }

    [Fact]
    public void APieceFromOnePeerThatFailsItsHashNamesThatPeer()
    {
        using var kit = new DownloadKit(pieces: 1);
        var ban = new SmartBan();
        var liar = kit.Peer(depth: 2);
        Assert.Equal(2, kit.Ask(liar).Count);
        kit.Deliver(liar, 0, 0, GoodBlock(0), out _, out _);
        kit.Deliver(liar, 0, 1, BadBlock(1), out _, out var piece);

        var banned = Check(ban, kit.Scheduler, piece!, out bool verified);
        Assert.False(verified);
        Assert.Equal(new[] { liar }, banned);
    }

    [Fact]
    public void AFailedPieceFromSeveralPeersBansNobodyAndPutsThemAllOnParole()
    {
        using var kit = new DownloadKit(pieces: 1);
        var ban = new SmartBan();
        var honest = kit.Peer(depth: 1);
        var liar = kit.Peer(depth: 1);
        var piece = Assemble(kit, (honest, 0, GoodBlock(0)), (liar, 1, BadBlock(1)));

        var banned = Check(ban, kit.Scheduler, piece, out bool verified);
        Assert.False(verified);
        Assert.Null(banned); // either could have lied
        Assert.True(honest.OnParole);
        Assert.True(liar.OnParole);
        Assert.True(ban.IsSuspected(0));
    }

    [Fact]
    public void WhenThePieceVerifiesFromAnotherPeerThePeerWhoseBlockDifferedIsNamedAndOnlyIt()
    {
        using var kit = new DownloadKit(pieces: 1);
        var ban = new SmartBan();
        var honest = kit.Peer(depth: 1);
        var liar = kit.Peer(depth: 1);
        Assert.Null(Check(ban, kit.Scheduler, Assemble(kit, (honest, 0, GoodBlock(0)), (liar, 1, BadBlock(1))), out _));

        var other = kit.Peer(depth: 2);
        var again = Assemble(kit, (other, 0, GoodBlock(0)), (other, 1, GoodBlock(1)));
        var banned = Check(ban, kit.Scheduler, again, out bool verified);
        Assert.True(verified);
        Assert.Equal(new[] { liar }, banned);
        Assert.False(ban.IsSuspected(0));
    }

    [Fact]
    public void PeersOnParoleGetWholePiecesOfTheirOwnSoTheRetryNamesTheLiar()
    {
        using var kit = new DownloadKit(pieces: 1);
        var ban = new SmartBan();
        var honest = kit.Peer(depth: 2);
        var liar = kit.Peer(depth: 2);
        honest.Depth = liar.Depth = 1;
        Assert.Null(Check(ban, kit.Scheduler, Assemble(kit, (honest, 0, GoodBlock(0)), (liar, 1, BadBlock(1))), out _));
        honest.Depth = liar.Depth = 2;

        // The honest peer, on parole, starts the piece again: it is its own, nobody on parole joins it.
        Assert.Equal(new[] { RequestFor(0, 0), RequestFor(0, 1) }, kit.Ask(honest));
        Assert.Same(honest, Assert.Single(kit.Scheduler.Partials).ExclusiveOwner);
        Assert.Empty(kit.Ask(liar));
        kit.Deliver(honest, 0, 0, GoodBlock(0), out _, out _);
        kit.Deliver(honest, 0, 1, GoodBlock(1), out _, out var piece);

        var banned = Check(ban, kit.Scheduler, piece!, out bool verified);
        Assert.True(verified);
        Assert.Equal(new[] { liar }, banned);
        Assert.False(honest.OnParole); // a whole good piece of its own clears it
        Assert.True(liar.OnParole);
    }

    [Fact]
    public void APeerThatSentTheSameBytesAsTheGoodPieceIsNotNamedEvenAfterSeveralFailures()
    {
        using var kit = new DownloadKit(pieces: 1);
        var ban = new SmartBan();
        var honest = kit.Peer(depth: 1);
        var liar = kit.Peer(depth: 1);
        var third = kit.Peer(depth: 1);
        // Two failed attempts, the honest peer in both, the liar's bad block in one and a third peer's in the other.
        Assert.Null(Check(ban, kit.Scheduler, Assemble(kit, (honest, 0, GoodBlock(0)), (liar, 1, BadBlock(1))), out _));
        honest.OnParole = liar.OnParole = false; // as if each had since cleared itself with a good piece of its own
        Assert.Null(Check(ban, kit.Scheduler, Assemble(kit, (third, 0, BadBlock(0)), (honest, 1, GoodBlock(1))), out _));
        honest.OnParole = third.OnParole = false;

        var good = kit.Peer(depth: 2);
        var banned = Check(ban, kit.Scheduler, Assemble(kit, (good, 0, GoodBlock(0)), (good, 1, GoodBlock(1))), out bool verified);
        Assert.True(verified);
        Assert.Equal(new[] { liar, third }.OrderBy(p => p.Address.ToString()), banned!.OrderBy(p => p.Address.ToString()));
        Assert.DoesNotContain(honest, banned!);
    }
}
