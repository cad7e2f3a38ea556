using Swarm.Core.Content;
using Swarm.Core.Exchange.Download;

namespace Swarm.Core.Exchange.Upload;

/// <summary>
/// Seed steering (a light form of BitTorrent super-seeding): a complete node counts each piece it starts sending, and
/// declines a piece that is commoner (peers holding it + times handed out) than one the requester still lacks, so its
/// upload goes to pieces nobody has yet and the peers trade the rest among themselves. Not thread-safe: the swarm calls
/// it under its lock.
/// </summary>
internal sealed class SeedSteering
{
    private int[]? _sent;

    /// <summary>How many peers each piece was handed to (a copy).</summary>
    public int[] SentCounts => _sent?.ToArray() ?? [];

    /// <summary>
    /// Just before a block of <paramref name="piece"/> goes out: false when the peer is sent elsewhere for it. The rest of
    /// a piece's blocks are never steered away once its first went out.
    /// </summary>
    /// <param name="held">The pieces this node holds (an ingester holds only those read so far).</param>
    /// <param name="peers">Peers connected to this content.</param>
    public bool Allow(PeerState peer, int piece, PiecePicker picker, Bitfield held, int peers)
    {
        if (peer.Serving.Contains(piece)) return true;
        _sent ??= new int[picker.PieceCount];
        if (SteerElsewhere(peer, piece, picker, held, peers)) return false;
        peer.Serving.Add(piece);
        _sent[piece]++;
        return true;
    }

    private bool SteerElsewhere(PeerState peer, int piece, PiecePicker picker, Bitfield held, int peers)
    {
        if (_sent == null || peers < 3) return false;
        int holders = picker.Availability(piece);
        int score = holders + _sent[piece];
        if (score == 0) return false;
        for (int i = 0; i < _sent.Length; i++)
            if (held[i] && picker.Availability(i) + _sent[i] < score && !peer.PeerHas(i)) return true;
        // Nothing rarer to offer: if another peer holds it, send the requester to them once; if it asks again after
        // its refusal window (it could not get the piece elsewhere), serve it.
        return holders >= 1 && peer.SteeredAway.Add(piece);
    }
}
