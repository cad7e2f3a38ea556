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
        int start = _random.Next(n);
        if (piecesDone < RandomFirstPieces)
        {
            for (int k = 0; k < n; k++)
            {
                int i = (start + k) % n;
                if (wanted(i) && peerHas(i)) return i;
            }
            return -1;
        }
        int best = -1, bestCount = int.MaxValue;
        for (int k = 0; k < n; k++)
        {
            int i = (start + k) % n;
            int a = _availability[i];
            if (a >= bestCount || !wanted(i) || !peerHas(i)) continue;
            best = i;
            bestCount = a;
        }
        return best;
    }
}
