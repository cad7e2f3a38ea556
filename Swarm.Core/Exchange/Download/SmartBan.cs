using System.Security.Cryptography;
using Swarm.Core.Content;

namespace Swarm.Core.Exchange.Download;

/// <summary>
/// Parole and smart ban (libtorrent's): who sent the bad block of a piece that failed its hash. A failed piece from one
/// peer names that peer. A failed piece from several puts them all on parole (whole pieces of their own only, see
/// <see cref="BlockScheduler"/>) and records each block's sender and SHA-256; once the piece verifies, every peer whose
/// recorded block differs from the good data is named. A peer that sent only good bytes is never named. Not thread-safe:
/// the swarm calls it under its lock, except <see cref="Digests"/>, which hashes outside it.
/// </summary>
internal sealed class SmartBan
{
    private readonly Dictionary<int, List<BlockDigest>> _suspects = [];

    /// <summary>Whether a failed attempt at the piece from several peers is on record.</summary>
    public bool IsSuspected(int piece) => _suspects.ContainsKey(piece);

    /// <summary>Whether <see cref="Judge"/> needs the piece's <see cref="Digests"/>: only in these rare cases, hashing costs.</summary>
    public static bool NeedsDigests(PartialPiece piece, bool verified, bool suspected) => verified ? suspected : piece.Contributors.Count > 1;

    /// <summary>Each block's sender and the SHA-256 of its bytes.</summary>
    public static BlockDigest[] Digests(PartialPiece piece)
    {
        var result = new BlockDigest[piece.Blocks.Length];
        var data = piece.Data;
        for (int b = 0; b < piece.Blocks.Length; b++)
        {
            int offset = b * PieceLayout.BlockSize;
            int length = Math.Min(PieceLayout.BlockSize, piece.Length - offset);
            result[b] = new BlockDigest(piece.Blocks[b].From, b, SHA256.HashData(data.Slice(offset, length)));
        }
        return result;
    }

    /// <summary>
    /// A piece was checked against its hash; returns the peers to ban (null or empty when none). Verified: the peers whose
    /// recorded block of it differs from the good data (<paramref name="blocks"/>), and a sole sender leaves parole.
    /// Failed: its sole sender; from several, nobody yet: they go on parole and their blocks on record.
    /// </summary>
    public List<PeerState>? Judge(PartialPiece piece, bool verified, BlockDigest[]? blocks)
    {
        if (verified)
        {
            if (piece.Contributors.Count == 1) piece.Contributors.First().OnParole = false;
            if (!_suspects.Remove(piece.Index, out var earlier)) return null;
            return [.. earlier.Where(e => !blocks![e.Block].Hash.AsSpan().SequenceEqual(e.Hash)).Select(e => e.From!).Distinct()];
        }
        if (piece.Contributors.Count == 1) return [piece.Contributors.First()];
        foreach (var suspect in piece.Contributors) suspect.OnParole = true;
        var list = _suspects.TryGetValue(piece.Index, out var known) ? known : _suspects[piece.Index] = [];
        list.AddRange(blocks!.Where(b => b.From != null));
        return null;
    }
}
