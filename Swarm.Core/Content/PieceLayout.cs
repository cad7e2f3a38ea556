namespace Swarm.Core.Content;

/// <summary>How content of a given length is cut into pieces (the unit of verification) and blocks (the unit of request).</summary>
public sealed class PieceLayout
{
    public const int MinPieceSize = 256 * 1024;
    public const int MaxPieceSize = 16 * 1024 * 1024;
    public const int TargetPieceCount = 1000;
    /// <summary>Block size: 128 KiB measured best on loopback (fewer frames) while still small enough to pipeline on slow links.</summary>
    public const int BlockSize = 128 * 1024;

    public PieceLayout(long length, int pieceSize)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), "content length cannot be negative");
        if (!IsValidPieceSize(pieceSize)) throw new ArgumentOutOfRangeException(nameof(pieceSize), $"piece size {pieceSize} is not a power of two between {MinPieceSize} and {MaxPieceSize}");
        long count = length / pieceSize + (length % pieceSize != 0 ? 1 : 0);
        if (count > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(length), "content too large");
        Length = length;
        PieceSize = pieceSize;
        PieceCount = (int)count;
    }

    public long Length { get; }
    public int PieceSize { get; }
    public int PieceCount { get; }

    public static bool IsValidPieceSize(int size) => size >= MinPieceSize && size <= MaxPieceSize && (size & (size - 1)) == 0;

    /// <summary>The power of two closest (in log scale) to length / 1000, clamped to [256 KiB, 16 MiB].</summary>
    public static int ChoosePieceSize(long length)
    {
        double ideal = Math.Max(1.0, length / (double)TargetPieceCount);
        int exp = (int)Math.Round(Math.Log2(ideal));
        long size = 1L << Math.Clamp(exp, 18, 24);
        return (int)size;
    }

    public static PieceLayout For(long length) => new(length, ChoosePieceSize(length));

    public long PieceOffset(int piece) => (long)piece * PieceSize;

    public int PieceLength(int piece)
    {
        if ((uint)piece >= (uint)PieceCount) throw new ArgumentOutOfRangeException(nameof(piece));
        return piece == PieceCount - 1 ? (int)(Length - PieceOffset(piece)) : PieceSize;
    }

    public int BlockCount(int piece) => (PieceLength(piece) + BlockSize - 1) / BlockSize;

    public int BlockLength(int piece, int block)
    {
        int pieceLength = PieceLength(piece);
        if (block < 0 || block >= (pieceLength + BlockSize - 1) / BlockSize) throw new ArgumentOutOfRangeException(nameof(block));
        return Math.Min(BlockSize, pieceLength - block * BlockSize);
    }

    /// <summary>True when (piece, offset, length) names exactly one whole block of this content.</summary>
    public bool IsValidBlock(int piece, int offset, int length)
    {
        if ((uint)piece >= (uint)PieceCount || offset < 0 || offset % BlockSize != 0) return false;
        int pieceLength = PieceLength(piece);
        if (offset >= pieceLength) return false;
        return length == Math.Min(BlockSize, pieceLength - offset);
    }
}
