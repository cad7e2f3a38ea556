using System.Net;
using Swarm.Core.Content;

namespace Swarm.Core.Dht;

/// <summary>
/// How much of a content a provider holds: complete, or a count of verified pieces out of the total plus an optional coarse
/// bitmap (at most <see cref="MaxBitmapBytes"/> bytes; bit i set when the provider holds every piece of segment i, segments of
/// <see cref="PiecesPerBit"/> pieces, most significant bit first).
/// </summary>
public readonly record struct ProviderHoldings
{
    public const int MaxBitmapBytes = 128;
    public const int MaxBitmapBits = MaxBitmapBytes * 8;
    /// <summary>Largest piece count accepted from the network (far above any real content).</summary>
    public const int MaxPieces = 1 << 26;

    private readonly byte[]? _bitmap;

    private ProviderHoldings(int verified, int total, byte[]? bitmap)
    {
        VerifiedPieces = verified;
        TotalPieces = total;
        _bitmap = bitmap is { Length: > 0 } ? bitmap : null;
    }

    public int VerifiedPieces { get; }
    public int TotalPieces { get; }
    public ReadOnlyMemory<byte> Bitmap => _bitmap;
    public bool IsComplete => VerifiedPieces == TotalPieces;

    /// <summary>Pieces covered by one bitmap bit for a content of <paramref name="totalPieces"/> pieces.</summary>
    public static int PiecesPerBitFor(int totalPieces) => Math.Max(1, (totalPieces + MaxBitmapBits - 1) / MaxBitmapBits);
    public int PiecesPerBit => PiecesPerBitFor(TotalPieces);

    /// <summary>The provider holds every piece. <paramref name="totalPieces"/> may be 0 when the caller does not know it.</summary>
    public static ProviderHoldings Complete(int totalPieces)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(totalPieces);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(totalPieces, MaxPieces);
        return new ProviderHoldings(totalPieces, totalPieces, null);
    }

    /// <summary>A partial holder. <paramref name="bitmap"/>, when given, must be the coarse bitmap for <paramref name="totalPieces"/> (see <see cref="FromBitfield"/>).</summary>
    public static ProviderHoldings Partial(int verifiedPieces, int totalPieces, ReadOnlySpan<byte> bitmap = default)
    {
        if (!IsValid(verifiedPieces, totalPieces, bitmap.Length)) throw new ArgumentOutOfRangeException(nameof(verifiedPieces), "need 0 ≤ verified ≤ total and a bitmap that fits the total");
        return new ProviderHoldings(verifiedPieces, totalPieces, bitmap.IsEmpty ? null : bitmap.ToArray());
    }

    /// <summary>Summarises a piece bitfield: the count, and a bitmap where a bit is set only if its whole segment is held.</summary>
    public static ProviderHoldings FromBitfield(Bitfield pieces)
    {
        int total = pieces.Length;
        if (pieces.IsComplete) return Complete(total);
        int per = PiecesPerBitFor(total);
        int bits = (total + per - 1) / per;
        var bitmap = new byte[(bits + 7) / 8];
        for (int bit = 0; bit < bits; bit++)
        {
            bool all = true;
            for (int p = bit * per; p < Math.Min(total, (bit + 1) * per) && all; p++) all = pieces[p];
            if (all) bitmap[bit >> 3] |= (byte)(0x80 >> (bit & 7));
        }
        return new ProviderHoldings(pieces.Count, total, bitmap);
    }

    /// <summary>Whether the provider may hold <paramref name="piece"/>: always for a complete holder; by the bitmap when there is one; otherwise unknown (true if it holds any).</summary>
    public bool MayHave(int piece)
    {
        if (IsComplete) return true;
        if (_bitmap == null) return VerifiedPieces > 0;
        int bit = piece / PiecesPerBit;
        return bit >> 3 < _bitmap.Length && (_bitmap[bit >> 3] & (0x80 >> (bit & 7))) != 0;
    }

    internal static bool IsValid(int verified, int total, int bitmapLength)
    {
        if (total is < 0 or > MaxPieces || verified < 0 || verified > total) return false;
        if (bitmapLength == 0) return true;
        int per = PiecesPerBitFor(total);
        int bits = (total + per - 1) / per;
        return bitmapLength == (bits + 7) / 8 && bitmapLength <= MaxBitmapBytes;
    }

    internal static ProviderHoldings FromWire(int verified, int total, byte[]? bitmap) => new(verified, total, bitmap);

    public override string ToString() => IsComplete ? $"complete ({TotalPieces} pieces)" : $"{VerifiedPieces}/{TotalPieces} pieces";
}

/// <summary>A node that holds (part of) a content: its node id, the TCP endpoint it serves from, what it holds, and how long ago it announced.</summary>
public sealed record ProviderRecord(Hash256 NodeId, IPEndPoint EndPoint, ProviderHoldings Holdings, TimeSpan Age);
