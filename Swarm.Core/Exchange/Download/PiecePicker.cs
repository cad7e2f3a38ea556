using Swarm.Core.Content;

namespace Swarm.Core.Exchange.Download;

/// <summary>
/// Chooses which new piece to start from a peer: random for the first few (so new nodes quickly have something to trade),
/// then rarest first from availability counts that are kept up to date on bitfield / have / disconnect, never recomputed per pick.
/// Not thread-safe: the swarm calls it under its lock.
/// </summary>
public sealed class PiecePicker
{
    public const int RandomFirstPieces = 4;
    private readonly int[] _availability;
    private int _seeds; // peers that have everything count once for every piece
    private readonly Random _random;

    public PiecePicker(int pieceCount, Random? random = null)
    {
        _availability = new int[pieceCount];
        _random = random ?? Random.Shared;
    }

    public int PieceCount => _availability.Length;
    public int Availability(int piece) => _availability[piece] + _seeds;

    public void AddPeer(Bitfield has)
    {
        for (int i = 0; i < _availability.Length; i++) if (has[i]) _availability[i]++;
    }

    public void RemovePeer(Bitfield has)
    {
        for (int i = 0; i < _availability.Length; i++) if (has[i]) _availability[i]--;
    }

    public void AddSeed() => _seeds++;
    public void RemoveSeed() => _seeds--;
    public void AddHave(int piece) => _availability[piece]++;

    /// <summary>
    /// Returns a piece the peer has that is still wanted and not started, or -1.
    /// <paramref name="wanted"/> says whether a piece is neither verified nor in progress.
    /// </summary>
    public int Pick(Func<int, bool> peerHas, Func<int, bool> wanted, int piecesDone)
    {
        int n = _availability.Length;
        if (n == 0) return -1;
        // From a random piece to the end, then from the start up to it: the same order as (start + k) % n without a
        // division per piece (this scan runs for every request a peer's pump makes, over ~1,000 pieces).
        int start = _random.Next(n);
        if (piecesDone < RandomFirstPieces)
        {
            int found = FirstWanted(peerHas, wanted, start, n);
            return found >= 0 ? found : FirstWanted(peerHas, wanted, 0, start);
        }
        int best = -1, bestCount = int.MaxValue;
        RarestIn(peerHas, wanted, start, n, ref best, ref bestCount);
        RarestIn(peerHas, wanted, 0, start, ref best, ref bestCount);
        return best;
    }

    private static int FirstWanted(Func<int, bool> peerHas, Func<int, bool> wanted, int from, int to)
    {
        for (int i = from; i < to; i++) if (wanted(i) && peerHas(i)) return i;
        return -1;
    }

    /// <summary>The first piece of [from, to) rarer than <paramref name="bestCount"/>; stops at a count of 0 (none is rarer).</summary>
    private void RarestIn(Func<int, bool> peerHas, Func<int, bool> wanted, int from, int to, ref int best, ref int bestCount)
    {
        var availability = _availability;
        for (int i = from; i < to && bestCount > 0; i++)
        {
            int a = availability[i];
            if (a >= bestCount || !wanted(i) || !peerHas(i)) continue;
            best = i;
            bestCount = a;
        }
    }
}
