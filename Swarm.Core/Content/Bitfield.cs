namespace Swarm.Core.Content;

/// <summary>One bit per piece, most significant bit first within each byte (the BitTorrent wire order). Thread-safe for Set/Get.</summary>
public sealed class Bitfield
{
    private readonly byte[] _bits;
    private int _count;

    public Bitfield(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        _bits = new byte[ByteLength(length)];
    }

    public int Length { get; }
    public int Count => Volatile.Read(ref _count);
    public bool IsComplete => Count == Length;
    public bool IsEmpty => Count == 0;

    public static int ByteLength(int bits) => (bits + 7) / 8;

    public bool this[int index]
    {
        get
        {
            if ((uint)index >= (uint)Length) throw new ArgumentOutOfRangeException(nameof(index));
            return (Volatile.Read(ref _bits[index >> 3]) & (0x80 >> (index & 7))) != 0;
        }
    }

    /// <summary>Sets a bit; returns false if it was already set.</summary>
    public bool Set(int index)
    {
        if ((uint)index >= (uint)Length) throw new ArgumentOutOfRangeException(nameof(index));
        byte mask = (byte)(0x80 >> (index & 7));
        ref byte slot = ref _bits[index >> 3];
        while (true)
        {
            byte old = Volatile.Read(ref slot);
            if ((old & mask) != 0) return false;
            if (Interlocked.CompareExchange(ref slot, (byte)(old | mask), old) == old)
            {
                Interlocked.Increment(ref _count);
                return true;
            }
        }
    }

    /// <summary>Clears a bit (a stored piece that failed its hash check); returns false if it was not set.</summary>
    public bool Clear(int index)
    {
        if ((uint)index >= (uint)Length) throw new ArgumentOutOfRangeException(nameof(index));
        byte mask = (byte)(0x80 >> (index & 7));
        ref byte slot = ref _bits[index >> 3];
        while (true)
        {
            byte old = Volatile.Read(ref slot);
            if ((old & mask) == 0) return false;
            if (Interlocked.CompareExchange(ref slot, (byte)(old & ~mask), old) == old)
            {
                Interlocked.Decrement(ref _count);
                return true;
            }
        }
    }

    /// <summary>A copy that later changes to this bitfield do not affect (a snapshot).</summary>
    public Bitfield Clone() => FromBytes(ToBytes(), Length);

    public void SetAll()
    {
        for (int i = 0; i < Length; i++) Set(i);
    }

    public byte[] ToBytes()
    {
        var copy = new byte[_bits.Length];
        for (int i = 0; i < copy.Length; i++) copy[i] = Volatile.Read(ref _bits[i]);
        return copy;
    }

    /// <summary>Reads a wire bitfield; spare bits past <paramref name="length"/> must be zero.</summary>
    public static Bitfield FromBytes(ReadOnlySpan<byte> bytes, int length)
    {
        if (bytes.Length != ByteLength(length)) throw new InvalidDataException($"bitfield has {bytes.Length} bytes, expected {ByteLength(length)}");
        var bf = new Bitfield(length);
        int spare = bf._bits.Length * 8 - length;
        if (spare > 0 && (bytes[^1] & ((1 << spare) - 1)) != 0) throw new InvalidDataException("bitfield has bits set past the last piece");
        for (int i = 0; i < length; i++)
            if ((bytes[i >> 3] & (0x80 >> (i & 7))) != 0) bf.Set(i);
        return bf;
    }
}
