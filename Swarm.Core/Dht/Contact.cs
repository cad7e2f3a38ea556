using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Swarm.Core.Content;

namespace Swarm.Core.Dht;

/// <summary>A DHT node: its id and the UDP endpoint it answered from.</summary>
public readonly record struct Contact(Hash256 Id, IPEndPoint EndPoint)
{
    public override string ToString() => $"{Id.ToHex()[..12]}@{EndPoint}";
}

/// <summary>Distance, bucket and address helpers shared by the routing table, lookups and stores.</summary>
internal static class DhtAddress
{
    /// <summary>IPv4-mapped IPv6 addresses (from dual-mode sockets) become plain IPv4, so one host has one key.</summary>
    public static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    public static IPEndPoint Normalize(IPEndPoint endPoint) =>
        endPoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port) : endPoint;

    /// <summary>The /24 (IPv4) or /48 (IPv6) a node sits in; the routing table keeps at most a few per bucket.</summary>
    public static UInt128 SubnetKey(IPAddress address)
    {
        address = Normalize(address);
        Span<byte> b = stackalloc byte[16];
        address.TryWriteBytes(b, out int written);
        if (written == 4) return ((UInt128)1 << 64) | ((UInt128)b[0] << 16) | ((UInt128)b[1] << 8) | b[2];
        UInt128 key = (UInt128)2 << 64;
        for (int i = 0; i < 6; i++) key |= (UInt128)b[i] << (8 * (5 - i));
        return key;
    }

    /// <summary>
    /// Who stands behind a record, for per-key admission limits: the IPv4 address, or the /64 of an IPv6 address (one host
    /// easily has a whole /64, so its addresses count as one). 0 for a record this node stores itself.
    /// </summary>
    public static UInt128 SourceKey(IPAddress? address)
    {
        if (address == null) return 0;
        address = Normalize(address);
        Span<byte> b = stackalloc byte[16];
        address.TryWriteBytes(b, out int written);
        if (written == 4) return ((UInt128)1 << 64) | ((UInt128)b[0] << 24) | ((UInt128)b[1] << 16) | ((UInt128)b[2] << 8) | b[3];
        UInt128 key = (UInt128)2 << 64;
        for (int i = 0; i < 8; i++) key |= (UInt128)b[i] << (8 * (7 - i));
        return key;
    }

    /// <summary>
    /// Who sent a datagram, for the per-address limits (rate limit, store admission): <see cref="SourceKey"/> of its
    /// address, whatever the port — except that with <paramref name="loopbackAsHosts"/> (<see cref="DhtOptions.LoopbackAsHosts"/>)
    /// each loopback address:port is a host of its own.
    /// </summary>
    public static UInt128 HostKey(IPEndPoint endPoint, bool loopbackAsHosts)
    {
        var address = Normalize(endPoint.Address);
        if (!loopbackAsHosts || !IPAddress.IsLoopback(address)) return SourceKey(address);
        // Tag 3 keeps these apart from SourceKey's tags 1 (IPv4) and 2 (IPv6): the 32 bits of a 127.x.y.z address (IPv6
        // loopback is only ::1, marked by bit 63), then the port.
        ulong host;
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> b = stackalloc byte[4];
            address.TryWriteBytes(b, out _);
            host = (ulong)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b) << 16;
        }
        else
        {
            host = 1UL << 63;
        }
        return ((UInt128)3 << 64) | host | (uint)endPoint.Port;
    }

    /// <summary>
    /// An address a contact may have: not unspecified, not multicast or broadcast, a real port. Loopback contacts are
    /// only believed from a loopback source (a remote node naming 127.0.0.1 means nothing to us).
    /// </summary>
    public static bool IsUsable(IPEndPoint endPoint, IPAddress? reportedBy = null)
    {
        if (endPoint.Port is <= 0 or > 65535) return false;
        var a = Normalize(endPoint.Address);
        if (a.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any) || a.Equals(IPAddress.Broadcast)) return false;
        if (a.AddressFamily == AddressFamily.InterNetworkV6 && a.IsIPv6Multicast) return false;
        if (a.AddressFamily == AddressFamily.InterNetwork)
        {
            Span<byte> b = stackalloc byte[4];
            a.TryWriteBytes(b, out _);
            if (b[0] == 0 || b[0] >= 224) return false; // "this network", multicast, reserved
        }
        if (reportedBy != null && IPAddress.IsLoopback(a) && !IPAddress.IsLoopback(Normalize(reportedBy))) return false;
        return true;
    }

    /// <summary>Index of the bucket <paramref name="id"/> belongs to: the length of the prefix it shares with <paramref name="self"/> (256 for self).</summary>
    public static int BucketIndex(Hash256 self, Hash256 id) => self.Xor(id).LeadingZeroCount();

    /// <summary>A random id whose shared prefix with <paramref name="self"/> is exactly <paramref name="bucket"/> bits long.</summary>
    public static Hash256 RandomIdInBucket(Hash256 self, int bucket)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bucket);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bucket, 255);
        Span<byte> distance = stackalloc byte[Hash256.Size];
        RandomNumberGenerator.Fill(distance);
        for (int bit = 0; bit < bucket; bit++) distance[bit >> 3] &= (byte)~(0x80 >> (bit & 7));
        distance[bucket >> 3] |= (byte)(0x80 >> (bucket & 7));
        Span<byte> s = stackalloc byte[Hash256.Size];
        self.CopyTo(s);
        for (int i = 0; i < Hash256.Size; i++) distance[i] ^= s[i];
        return new Hash256(distance);
    }

    /// <summary>Orders ids by XOR distance to a target (closest first).</summary>
    public static Comparison<Hash256> ByDistanceTo(Hash256 target) => (x, y) => target.Xor(x).CompareTo(target.Xor(y));
}
