using System.Numerics;
using Swarm.Core.Content;

namespace Swarm.Tests.Core.Content;

public sealed class PieceLayoutTests
{
    private const int KiB = 1024;
    private const int MiB = 1024 * 1024;

    [Theory]
    [InlineData(0L, 256 * KiB)]
    [InlineData(1L, 256 * KiB)]
    [InlineData(100L * MiB, 256 * KiB)]
    [InlineData(1024L * MiB, 1 * MiB)]          // 1 GiB → 1 MiB (1024 pieces)
    [InlineData(4096L * MiB, 4 * MiB)]
    [InlineData(1L << 40, 16 * MiB)]            // 1 TiB: clamped
    [InlineData(long.MaxValue / 2, 16 * MiB)]
    public void ChoosePieceSize_known_values(long length, int expected) => Assert.Equal(expected, PieceLayout.ChoosePieceSize(length));

    public static TheoryData<long> Lengths
    {
        get
        {
            var data = new TheoryData<long> { 0, 1, 255, 256 * KiB - 1, 256 * KiB, 256 * KiB + 1 };
            var random = new Random(9);
            for (int i = 0; i < 40; i++) data.Add((long)Math.Pow(2, 10 + random.NextDouble() * 35)); // 1 KiB .. 32 TiB, log-uniform
            for (int e = 20; e <= 44; e++) { data.Add(1L << e); data.Add((1L << e) - 1); data.Add((long)((1L << e) * 1.41)); data.Add((long)((1L << e) * 1.42)); }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void ChoosePieceSize_is_a_power_of_two_in_range_giving_about_1000_pieces(long length)
    {
        int size = PieceLayout.ChoosePieceSize(length);
        Assert.True(BitOperations.IsPow2(size), $"{size} is not a power of two");
        Assert.InRange(size, PieceLayout.MinPieceSize, PieceLayout.MaxPieceSize);
        Assert.True(PieceLayout.IsValidPieceSize(size));
        long pieces = (length + size - 1) / size;
        if (size > PieceLayout.MinPieceSize && size < PieceLayout.MaxPieceSize)
            Assert.InRange(pieces, 707, 1415); // within a factor √2 of 1000 (closest power of two in log scale)
        else if (size == PieceLayout.MinPieceSize)
            Assert.True(pieces <= 1415, $"{pieces} pieces of the smallest size: a larger piece would be closer to 1000");
        else
            Assert.True(pieces >= 707, $"{pieces} pieces of the largest size: a smaller piece would be closer to 1000");
    }

    [Fact]
    public void ChoosePieceSize_never_decreases_with_length()
    {
        int previous = 0;
        for (long length = 1; length < (1L << 45); length = length * 5 / 4 + 1)
        {
            int size = PieceLayout.ChoosePieceSize(length);
            Assert.True(size >= previous, $"piece size went down from {previous} to {size} at {length}");
            previous = size;
        }
    }

    [Fact]
    public void Empty_content_has_no_pieces()
    {
        var layout = PieceLayout.For(0);
        Assert.Equal(0, layout.PieceCount);
        Assert.Throws<ArgumentOutOfRangeException>(() => layout.PieceLength(0));
        Assert.False(layout.IsValidBlock(0, 0, 0));
        Assert.False(layout.IsValidBlock(0, 0, PieceLayout.BlockSize));
    }

    [Fact]
    public void One_byte_content_has_one_piece_of_one_block_of_one_byte()
    {
        var layout = PieceLayout.For(1);
        Assert.Equal(1, layout.PieceCount);
        Assert.Equal(1, layout.PieceLength(0));
        Assert.Equal(1, layout.BlockCount(0));
        Assert.Equal(1, layout.BlockLength(0, 0));
        Assert.True(layout.IsValidBlock(0, 0, 1));
        Assert.False(layout.IsValidBlock(0, 0, 0));
        Assert.False(layout.IsValidBlock(0, 0, 2));
        Assert.False(layout.IsValidBlock(1, 0, 1));
    }

    [Fact]
    public void Pieces_and_blocks_cover_the_content_exactly()
    {
        foreach (long length in new long[] { 1, 1000, PieceLayout.BlockSize, PieceLayout.BlockSize + 1, 256 * KiB, 256 * KiB + 1, 3 * MiB + 12345, 600L * MiB + 7 })
        {
            var layout = PieceLayout.For(length);
            long total = 0;
            for (int p = 0; p < layout.PieceCount; p++)
            {
                Assert.Equal(total, layout.PieceOffset(p));
                int pieceLength = layout.PieceLength(p);
                Assert.InRange(pieceLength, 1, layout.PieceSize);
                if (p < layout.PieceCount - 1) Assert.Equal(layout.PieceSize, pieceLength);
                int blockTotal = 0;
                for (int b = 0; b < layout.BlockCount(p); b++)
                {
                    int bl = layout.BlockLength(p, b);
                    Assert.InRange(bl, 1, PieceLayout.BlockSize);
                    Assert.True(layout.IsValidBlock(p, b * PieceLayout.BlockSize, bl));
                    blockTotal += bl;
                }
                Assert.Equal(pieceLength, blockTotal);
                total += pieceLength;
            }
            Assert.Equal(length, total);
        }
    }

    [Fact]
    public void Last_piece_and_last_block_are_short()
    {
        // 256 KiB pieces: 2 full pieces, then 200,000 bytes = one full block and a 68,928-byte block.
        var layout = new PieceLayout(2L * 256 * KiB + 200_000, 256 * KiB);
        Assert.Equal(3, layout.PieceCount);
        Assert.Equal(200_000, layout.PieceLength(2));
        Assert.Equal(2, layout.BlockCount(2));
        Assert.Equal(PieceLayout.BlockSize, layout.BlockLength(2, 0));
        Assert.Equal(200_000 - PieceLayout.BlockSize, layout.BlockLength(2, 1));
        Assert.True(layout.IsValidBlock(2, PieceLayout.BlockSize, 200_000 - PieceLayout.BlockSize));
        Assert.False(layout.IsValidBlock(2, PieceLayout.BlockSize, PieceLayout.BlockSize));
        Assert.False(layout.IsValidBlock(2, 2 * PieceLayout.BlockSize, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => layout.PieceLength(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => layout.PieceLength(-1));
    }

    [Theory]
    [InlineData(-1, 0, PieceLayout.BlockSize)]
    [InlineData(int.MinValue, 0, PieceLayout.BlockSize)]
    [InlineData(0, -PieceLayout.BlockSize, PieceLayout.BlockSize)]
    [InlineData(0, 1, PieceLayout.BlockSize)]
    [InlineData(0, PieceLayout.BlockSize / 2, PieceLayout.BlockSize)]
    [InlineData(0, 0, PieceLayout.BlockSize - 1)]
    [InlineData(0, 0, PieceLayout.BlockSize + 1)]
    [InlineData(0, 0, 0)]
    [InlineData(0, 0, -1)]
    [InlineData(0, 256 * KiB, PieceLayout.BlockSize)]
    [InlineData(0, int.MaxValue, PieceLayout.BlockSize)]
    [InlineData(4, 0, PieceLayout.BlockSize)]
    [InlineData(int.MaxValue, 0, PieceLayout.BlockSize)]
    public void IsValidBlock_rejects_everything_but_whole_blocks(int piece, int offset, int length)
    {
        var layout = new PieceLayout(4L * 256 * KiB, 256 * KiB);
        Assert.False(layout.IsValidBlock(piece, offset, length));
    }

    [Fact]
    public void BlockLength_of_a_block_past_the_piece_is_refused()
    {
        var layout = new PieceLayout(256 * KiB + 10, 256 * KiB);
        Assert.Equal(2, layout.BlockCount(0));
        Assert.Equal(1, layout.BlockCount(1));
        // A negative or zero "length" is never a right answer.
        Assert.Throws<ArgumentOutOfRangeException>(() => layout.BlockLength(1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => layout.BlockLength(0, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => layout.BlockLength(0, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => layout.BlockLength(2, 0));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(128 * KiB)]
    [InlineData(256 * KiB - 1)]
    [InlineData(256 * KiB + 4096)]
    [InlineData(32 * MiB)]
    [InlineData(-256 * KiB)]
    public void Bad_piece_sizes_are_refused(int pieceSize)
    {
        Assert.False(PieceLayout.IsValidPieceSize(pieceSize));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PieceLayout(MiB, pieceSize));
    }

    [Fact]
    public void Negative_length_is_refused() => Assert.Throws<ArgumentOutOfRangeException>(() => new PieceLayout(-1, 256 * KiB));

    [Theory]
    [InlineData(1L << 62, 256 * KiB)]
    [InlineData(long.MaxValue, 256 * KiB)]
    [InlineData(long.MaxValue, 16 * MiB)]
    [InlineData(long.MaxValue - 1, 16 * MiB)]
    public void Content_with_more_than_int_MaxValue_pieces_is_refused(long length, int pieceSize)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new PieceLayout(length, pieceSize));
    }

    [Fact]
    public void Largest_content_that_fits_has_int_MaxValue_pieces()
    {
        var layout = new PieceLayout((long)int.MaxValue * 16 * MiB, 16 * MiB);
        Assert.Equal(int.MaxValue, layout.PieceCount);
        Assert.Equal(16 * MiB, layout.PieceLength(int.MaxValue - 1));
    }
}
