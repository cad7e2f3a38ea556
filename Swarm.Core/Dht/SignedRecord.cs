using System.Buffers.Binary;
using System.Text;
using Swarm.Core.Content;
using Swarm.Core.Identity;

namespace Swarm.Core.Dht;

/// <summary>
/// A small value stored in the DHT under a key and signed by its publisher's node key (pointer records, leases).
/// Stores keep, per (key, publisher), the record with the highest sequence number until it expires.
/// The signature covers <c>"swarm/dht-record/v1" || key || sequence (i64 BE) || expires (unix seconds, i64 BE) || value</c>.
/// </summary>
public sealed class SignedRecord
{
    public const int MaxValueLength = 1000;
    public const int MaxPublicKeyLength = 128;
    private static readonly byte[] Domain = Encoding.ASCII.GetBytes("swarm/dht-record/v1");

    private readonly byte[] _value;
    private readonly byte[] _publicKey;
    private readonly byte[] _signature;

    internal SignedRecord(Hash256 key, byte[] value, long sequence, long expiresUnixSeconds, byte[] publicKey, byte[] signature)
    {
        Key = key;
        _value = value;
        Sequence = sequence;
        ExpiresUnixSeconds = expiresUnixSeconds;
        _publicKey = publicKey;
        _signature = signature;
        Publisher = Hash256.Of(publicKey);
    }

    public Hash256 Key { get; }
    public ReadOnlyMemory<byte> Value => _value;
    public long Sequence { get; }
    internal long ExpiresUnixSeconds { get; }
    public DateTimeOffset Expires => DateTimeOffset.FromUnixTimeSeconds(ExpiresUnixSeconds);
    /// <summary>The publisher's public key (SubjectPublicKeyInfo); <see cref="Publisher"/> is its node id.</summary>
    public ReadOnlyMemory<byte> PublicKey => _publicKey;
    public ReadOnlyMemory<byte> Signature => _signature;
    public Hash256 Publisher { get; }

    internal byte[] ValueArray => _value;
    internal byte[] PublicKeyArray => _publicKey;
    internal byte[] SignatureArray => _signature;

    /// <summary>Signs a record with the node's key.</summary>
    public static SignedRecord Create(NodeKey publisher, Hash256 key, ReadOnlySpan<byte> value, long sequence, DateTimeOffset expires)
    {
        if (value.Length > MaxValueLength) throw new ArgumentException($"a record value holds at most {MaxValueLength} bytes", nameof(value));
        ArgumentOutOfRangeException.ThrowIfNegative(sequence);
        long exp = expires.ToUnixTimeSeconds();
        var signature = publisher.Sign(SignedBytes(key, value, sequence, exp));
        return new SignedRecord(key, value.ToArray(), sequence, exp, publisher.PublicKey, signature);
    }

    /// <summary>Checks the signature against the embedded public key (ECDSA P-256).</summary>
    public bool Verify() => EcdsaSignature.Verify(_publicKey, SignedBytes(Key, _value, Sequence, ExpiresUnixSeconds), _signature);

    internal static byte[] SignedBytes(Hash256 key, ReadOnlySpan<byte> value, long sequence, long expiresUnixSeconds)
    {
        var bytes = new byte[Domain.Length + Hash256.Size + 16 + value.Length];
        var span = bytes.AsSpan();
        Domain.CopyTo(span);
        span = span[Domain.Length..];
        key.CopyTo(span);
        BinaryPrimitives.WriteInt64BigEndian(span[Hash256.Size..], sequence);
        BinaryPrimitives.WriteInt64BigEndian(span[(Hash256.Size + 8)..], expiresUnixSeconds);
        value.CopyTo(span[(Hash256.Size + 16)..]);
        return bytes;
    }

    /// <summary>Same content (key, publisher, sequence, value, expiry).</summary>
    internal bool SameAs(SignedRecord other) =>
        Key == other.Key && Publisher == other.Publisher && Sequence == other.Sequence && ExpiresUnixSeconds == other.ExpiresUnixSeconds && _value.AsSpan().SequenceEqual(other._value);

    public override string ToString() => $"record {Key.ToHex()[..12]} by {Publisher.ToHex()[..12]} seq {Sequence} ({_value.Length} bytes)";
}
