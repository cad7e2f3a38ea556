using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Swarm.Core.Content;

/// <summary>A 256-bit value (SHA-256 output): content ids, node ids and DHT keys share this key space.</summary>
public readonly struct Hash256 : IEquatable<Hash256>, IComparable<Hash256>
{
    public const int Size = 32;
    private readonly ulong _a, _b, _c, _d; // big-endian words, so comparison is numeric order

    public Hash256(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size) throw new ArgumentException($"a 256-bit value needs {Size} bytes, got {bytes.Length}", nameof(bytes));
        _a = BinaryPrimitives.ReadUInt64BigEndian(bytes);
        _b = BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]);
        _c = BinaryPrimitives.ReadUInt64BigEndian(bytes[16..]);
        _d = BinaryPrimitives.ReadUInt64BigEndian(bytes[24..]);
    }

    private Hash256(ulong a, ulong b, ulong c, ulong d) { _a = a; _b = b; _c = c; _d = d; }

    public static Hash256 Of(ReadOnlySpan<byte> data)
    {
        Span<byte> h = stackalloc byte[Size];
        SHA256.HashData(data, h);
        return new Hash256(h);
    }

    public void CopyTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, _a);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _b);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], _c);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], _d);
    }

    public byte[] ToArray()
    {
        var bytes = new byte[Size];
        CopyTo(bytes);
        return bytes;
    }

    public Hash256 Xor(Hash256 other) => new(_a ^ other._a, _b ^ other._b, _c ^ other._c, _d ^ other._d);

    /// <summary>Number of leading zero bits (256 for zero).</summary>
    public int LeadingZeroCount()
    {
        if (_a != 0) return System.Numerics.BitOperations.LeadingZeroCount(_a);
        if (_b != 0) return 64 + System.Numerics.BitOperations.LeadingZeroCount(_b);
        if (_c != 0) return 128 + System.Numerics.BitOperations.LeadingZeroCount(_c);
        if (_d != 0) return 192 + System.Numerics.BitOperations.LeadingZeroCount(_d);
        return 256;
    }

    public static Hash256 Random()
    {
        Span<byte> b = stackalloc byte[Size];
        RandomNumberGenerator.Fill(b);
        return new Hash256(b);
    }

    public string ToHex()
    {
        Span<byte> b = stackalloc byte[Size];
        CopyTo(b);
        return Convert.ToHexStringLower(b);
    }

    public static bool TryParseHex(ReadOnlySpan<char> hex, out Hash256 value)
    {
        value = default;
        if (hex.Length != Size * 2) return false;
        Span<byte> b = stackalloc byte[Size];
        if (Convert.FromHexString(hex, b, out _, out int written) != System.Buffers.OperationStatus.Done || written != Size) return false;
        value = new Hash256(b);
        return true;
    }

    public bool Equals(Hash256 other) => _a == other._a && _b == other._b && _c == other._c && _d == other._d;
    public override bool Equals(object? obj) => obj is Hash256 h && Equals(h);
    public override int GetHashCode() => HashCode.Combine(_a, _b, _c, _d);
    public int CompareTo(Hash256 other)
    {
        int c = _a.CompareTo(other._a);
        if (c != 0) return c;
        c = _b.CompareTo(other._b);
        if (c != 0) return c;
        c = _c.CompareTo(other._c);
        return c != 0 ? c : _d.CompareTo(other._d);
    }
    public static bool operator ==(Hash256 l, Hash256 r) => l.Equals(r);
    public static bool operator !=(Hash256 l, Hash256 r) => !l.Equals(r);
    public static bool operator <(Hash256 l, Hash256 r) => l.CompareTo(r) < 0;
    public static bool operator >(Hash256 l, Hash256 r) => l.CompareTo(r) > 0;
    public static bool operator <=(Hash256 l, Hash256 r) => l.CompareTo(r) <= 0;
    public static bool operator >=(Hash256 l, Hash256 r) => l.CompareTo(r) >= 0;
    public override string ToString() => ToHex();
}
