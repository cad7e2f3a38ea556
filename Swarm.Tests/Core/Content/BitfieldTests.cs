using Swarm.Core.Content;

namespace Swarm.Tests.Core.Content;

public sealed class BitfieldTests
{
    [Fact]
    public void Wire_order_is_most_significant_bit_first()
    {
        var bf = new Bitfield(20);
        bf.Set(0);
        bf.Set(7);
        bf.Set(9);
        bf.Set(19);
        Assert.Equal(new byte[] { 0x81, 0x40, 0x10 }, bf.ToBytes());
        var back = Bitfield.FromBytes([0x81, 0x40, 0x10], 20);
        for (int i = 0; i < 20; i++) Assert.Equal(i is 0 or 7 or 9 or 19, back[i]);
        Assert.Equal(4, back.Count);
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(8, 1)]
    [InlineData(9, 2)]
    [InlineData(16, 2)]
    [InlineData(17, 3)]
    public void ByteLength_rounds_up(int bits, int bytes)
    {
        Assert.Equal(bytes, Bitfield.ByteLength(bits));
        Assert.Equal(bytes, new Bitfield(bits).ToBytes().Length);
    }

    [Theory]
    [InlineData(1, 0x40)]
    [InlineData(1, 0x01)]
    [InlineData(10, 0x20)]
    [InlineData(10, 0x01)]
    [InlineData(15, 0x01)]
    public void FromBytes_rejects_spare_bits(int length, byte lastByte)
    {
        var bytes = new byte[Bitfield.ByteLength(length)];
        bytes[^1] = lastByte;
        Assert.Throws<InvalidDataException>(() => Bitfield.FromBytes(bytes, length));
    }

    [Theory]
    [InlineData(10, 1)]
    [InlineData(10, 3)]
    [InlineData(8, 0)]
    [InlineData(8, 2)]
    [InlineData(0, 1)]
    public void FromBytes_rejects_the_wrong_length(int length, int byteCount)
    {
        Assert.Throws<InvalidDataException>(() => Bitfield.FromBytes(new byte[byteCount], length));
    }

    [Fact]
    public void FromBytes_accepts_exact_full_bytes_and_the_last_valid_bit()
    {
        var full = Bitfield.FromBytes([0xFF, 0xFF], 16);
        Assert.True(full.IsComplete);
        var ten = Bitfield.FromBytes([0xFF, 0xC0], 10);
        Assert.True(ten.IsComplete);
        Assert.Equal(10, ten.Count);
    }

    [Fact]
    public void Count_and_Set_ignore_repeats()
    {
        var bf = new Bitfield(10);
        Assert.True(bf.IsEmpty);
        Assert.True(bf.Set(3));
        Assert.False(bf.Set(3));
        Assert.Equal(1, bf.Count);
        Assert.False(bf.IsComplete);
        bf.SetAll();
        Assert.Equal(10, bf.Count);
        Assert.True(bf.IsComplete);
        Assert.Equal(new byte[] { 0xFF, 0xC0 }, bf.ToBytes());
    }

    [Fact]
    public void Empty_bitfield_is_complete()
    {
        var bf = Bitfield.FromBytes([], 0);
        Assert.True(bf.IsComplete);
        Assert.True(bf.IsEmpty);
        Assert.Empty(bf.ToBytes());
    }

    [Fact]
    public void Out_of_range_index_throws()
    {
        var bf = new Bitfield(10);
        Assert.Throws<ArgumentOutOfRangeException>(() => bf[10]);
        Assert.Throws<ArgumentOutOfRangeException>(() => bf[-1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => bf.Set(10));
        Assert.Throws<ArgumentOutOfRangeException>(() => bf.Set(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Bitfield(-1));
    }

    [Fact]
    public void Concurrent_sets_count_each_bit_once()
    {
        var bf = new Bitfield(10_000);
        Parallel.For(0, 8, _ =>
        {
            for (int i = 0; i < bf.Length; i++) bf.Set(i);
        });
        Assert.Equal(10_000, bf.Count);
        Assert.True(bf.IsComplete);
        Assert.All(bf.ToBytes()[..^2], b => Assert.Equal(0xFF, b));
    }

    [Fact]
    public void ToBytes_is_a_copy()
    {
        var bf = new Bitfield(8);
        byte[] bytes = bf.ToBytes();
        bytes[0] = 0xFF;
        Assert.False(bf[0]);
        Assert.Equal(0, bf.Count);
    }
}
