using System.Buffers;
using System.Security.Cryptography;
using MessagePack;
using Swarm.Core.Content;
using Swarm.Core.Identity;

namespace Swarm.Tests.Core.Content;

public sealed class ManifestTests
{
    private const int PieceSize = 256 * 1024;

    private static byte[] Hashes(int count, int seed = 1)
    {
        var bytes = new byte[count * Hash256.Size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static Manifest Sample(NodeKey key, long length = 3L * PieceSize + 17, int seed = 1) =>
        new(length, PieceSize, Hashes((int)((length + PieceSize - 1) / PieceSize), seed), key.PublicKey);

    private delegate void WriteAction(ref MessagePackWriter writer);

    private static byte[] Pack(WriteAction write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        write(ref w);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>A manifest encoding with every field chosen by the test (same layout as the real one).</summary>
    private static byte[] Encode(object version, object length, object pieceSize, byte[]? key, byte[]? hashes, int fields = 5) => Pack((ref MessagePackWriter w) =>
    {
        w.WriteArrayHeader(fields);
        WriteNumber(ref w, version);
        WriteNumber(ref w, length);
        WriteNumber(ref w, pieceSize);
        if (key == null) w.WriteNil(); else w.Write(key);
        if (hashes == null) w.WriteNil(); else w.Write(hashes);
    });

    private static void WriteNumber(ref MessagePackWriter w, object value)
    {
        switch (value)
        {
            case int i: w.Write(i); break;
            case long l: w.Write(l); break;
            case ulong u: w.Write(u); break;
            case string s: w.Write(s); break;
            default: throw new ArgumentException(value.GetType().Name);
        }
    }

    [Fact]
    public void Encode_decode_round_trip()
    {
        using var key = NodeKey.Generate();
        var manifest = Sample(key);
        var decoded = Manifest.Decode(manifest.Encoded);
        Assert.Equal(manifest.Id, decoded.Id);
        Assert.Equal(manifest.Length, decoded.Length);
        Assert.Equal(manifest.PieceSize, decoded.PieceSize);
        Assert.Equal(manifest.PieceCount, decoded.PieceCount);
        Assert.Equal(manifest.IngesterKey, decoded.IngesterKey);
        Assert.Equal(manifest.Encoded, decoded.Encoded);
        for (int i = 0; i < manifest.PieceCount; i++) Assert.True(manifest.PieceHash(i).SequenceEqual(decoded.PieceHash(i)));
        Assert.Equal(new ContentId(Hash256.Of(manifest.Encoded)), manifest.Id);
    }

    [Fact]
    public void Empty_content_round_trips()
    {
        using var key = NodeKey.Generate();
        var manifest = new Manifest(0, PieceSize, [], key.PublicKey);
        Assert.Equal(0, manifest.PieceCount);
        Assert.Equal(manifest.Id, Manifest.Decode(manifest.Encoded).Id);
    }

    [Fact]
    public void Same_fields_give_the_same_id()
    {
        using var key = NodeKey.Generate();
        Assert.Equal(Sample(key).Id, Sample(key).Id);
    }

    [Fact]
    public void VerifyPiece_checks_hash_and_length()
    {
        using var key = NodeKey.Generate();
        var data = new byte[PieceSize + 100];
        new Random(4).NextBytes(data);
        byte[] hashes = [.. SHA256.HashData(data.AsSpan(0, PieceSize)), .. SHA256.HashData(data.AsSpan(PieceSize))];
        var manifest = new Manifest(data.Length, PieceSize, hashes, key.PublicKey);
        Assert.True(manifest.VerifyPiece(0, data.AsSpan(0, PieceSize)));
        Assert.True(manifest.VerifyPiece(1, data.AsSpan(PieceSize)));
        Assert.False(manifest.VerifyPiece(1, data.AsSpan(0, PieceSize)));
        Assert.False(manifest.VerifyPiece(1, data.AsSpan(PieceSize, 99)));
        data[5] ^= 1;
        Assert.False(manifest.VerifyPiece(0, data.AsSpan(0, PieceSize)));
    }

    public static TheoryData<string> Tampers => new() { "length", "piece size", "one hash bit", "key" };

    [Theory]
    [MemberData(nameof(Tampers))]
    public void Tampered_manifest_gets_a_different_id(string field)
    {
        using var key = NodeKey.Generate();
        using var other = NodeKey.Generate();
        var manifest = Sample(key, length: 4L * PieceSize);
        byte[] hashes = Hashes(4);
        Manifest tampered = field switch
        {
            "length" => new Manifest(4L * PieceSize - 1, PieceSize, hashes, key.PublicKey),
            "piece size" => new Manifest(4L * PieceSize, 2 * PieceSize, hashes.AsSpan(0, 2 * Hash256.Size), key.PublicKey),
            "one hash bit" => new Manifest(4L * PieceSize, PieceSize, Flip(hashes, 100), key.PublicKey),
            "key" => new Manifest(4L * PieceSize, PieceSize, hashes, other.PublicKey),
            _ => throw new ArgumentException(field),
        };
        Assert.NotEqual(manifest.Id, tampered.Id);
        // And a signature over the original does not carry over.
        byte[] signature = key.Sign(manifest.SignedPayload());
        Assert.True(manifest.VerifySignature(signature));
        Assert.False(tampered.VerifySignature(signature));
    }

    [Fact]
    public void Flipping_any_byte_of_the_encoding_changes_or_breaks_the_manifest()
    {
        using var key = NodeKey.Generate();
        var manifest = Sample(key);
        for (int i = 0; i < manifest.Encoded.Length; i++)
        {
            byte[] bytes = Flip(manifest.Encoded, i);
            Manifest decoded;
            try
            {
                decoded = Manifest.Decode(bytes);
            }
            catch (InvalidDataException)
            {
                continue;
            }
            Assert.NotEqual(manifest.Id, decoded.Id);
        }
    }

    private static byte[] Flip(byte[] bytes, int index)
    {
        byte[] copy = [.. bytes];
        copy[index] ^= 0x01;
        return copy;
    }

    [Fact]
    public void VerifySignature_fails_for_another_key_and_for_garbage()
    {
        using var key = NodeKey.Generate();
        using var other = NodeKey.Generate();
        var manifest = Sample(key);
        Assert.True(manifest.VerifySignature(key.Sign(manifest.SignedPayload())));
        Assert.False(manifest.VerifySignature(other.Sign(manifest.SignedPayload())));
        Assert.False(manifest.VerifySignature(key.Sign(manifest.Encoded)));     // signed, but not the domain-tagged payload
        Assert.False(manifest.VerifySignature(new byte[64]));
        Assert.False(manifest.VerifySignature([]));
        Assert.False(manifest.VerifySignature(RandomNumberGenerator.GetBytes(63)));
        // The ingester key in the manifest decides: the same hashes under another key do not verify the first signature.
        var forged = new Manifest(manifest.Length, PieceSize, Hashes(manifest.PieceCount), other.PublicKey);
        Assert.False(forged.VerifySignature(key.Sign(manifest.SignedPayload())));
    }

    [Fact]
    public void VerifySignature_fails_when_the_ingester_key_is_not_a_P256_key()
    {
        using var key = NodeKey.Generate();
        var manifest = new Manifest(PieceSize, PieceSize, Hashes(1), RandomNumberGenerator.GetBytes(91));
        Assert.False(manifest.VerifySignature(key.Sign(manifest.SignedPayload())));
        using var p384 = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var m384 = new Manifest(PieceSize, PieceSize, Hashes(1), p384.ExportSubjectPublicKeyInfo());
        byte[] sig = p384.SignData(m384.SignedPayload(), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        Assert.False(m384.VerifySignature(sig)); // 96-byte signature: not the protocol's key type
    }

    [Fact]
    public void Decode_rejects_every_truncation()
    {
        using var key = NodeKey.Generate();
        byte[] encoded = Sample(key).Encoded;
        for (int n = 0; n < encoded.Length; n++)
            Assert.Throws<InvalidDataException>(() => Manifest.Decode(encoded.AsMemory(0, n)));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    public void Decode_rejects_trailing_bytes(int extra)
    {
        using var key = NodeKey.Generate();
        byte[] encoded = [.. Sample(key).Encoded, .. new byte[extra]];
        Assert.Throws<InvalidDataException>(() => Manifest.Decode(encoded));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1)]
    [InlineData(-32)]
    [InlineData(32)]
    [InlineData(-4)]
    public void Decode_rejects_the_wrong_number_of_hashes(int delta)
    {
        using var key = NodeKey.Generate();
        long length = 3L * PieceSize + 17; // 4 pieces
        byte[] hashes = new byte[4 * Hash256.Size + delta];
        Assert.Throws<InvalidDataException>(() => Manifest.Decode(Encode(Manifest.Version, length, PieceSize, key.PublicKey, hashes)));
        Assert.Throws<InvalidDataException>(() => new Manifest(length, PieceSize, hashes, key.PublicKey));
    }

    [Fact]
    public void Decode_rejects_random_garbage()
    {
        var random = new Random(12);
        for (int i = 0; i < 2000; i++)
        {
            var bytes = new byte[random.Next(0, 200)];
            random.NextBytes(bytes);
            if (i % 2 == 0 && bytes.Length > 0) bytes[0] = 0x95; // often a plausible array header
            Assert.Throws<InvalidDataException>(() => Manifest.Decode(bytes));
        }
    }

    public static TheoryData<string> HostileManifests => new()
    {
        "empty", "nil", "four fields", "six fields", "version 2", "version as string", "version too big for int32",
        "negative length", "length too big for int64", "piece size not a power of two", "piece size too big for int32",
        "piece size 1", "length with more than int.MaxValue pieces", "length long.MaxValue", "nil key", "empty key", "key too long",
        "nil hashes", "hashes too long for the length", "array header of 4 billion",
    };

    [Theory]
    [MemberData(nameof(HostileManifests))]
    public void Decode_rejects_hostile_input_with_InvalidDataException(string name)
    {
        using var key = NodeKey.Generate();
        byte[] k = key.PublicKey;
        byte[] h4 = new byte[4 * Hash256.Size];
        long len4 = 3L * PieceSize + 1;
        byte[] bytes = name switch
        {
            "empty" => [],
            "nil" => [0xC0],
            "four fields" => Encode(1, len4, PieceSize, k, h4, fields: 4)[..^(h4.Length + 2)],
            "six fields" => [.. Encode(1, len4, PieceSize, k, h4, fields: 6), 0xC0],
            "version 2" => Encode(2, len4, PieceSize, k, h4),
            "version as string" => Encode("1", len4, PieceSize, k, h4),
            "version too big for int32" => Encode(ulong.MaxValue, len4, PieceSize, k, h4),
            "negative length" => Encode(1, -1L, PieceSize, k, []),
            "length too big for int64" => Encode(1, ulong.MaxValue, PieceSize, k, []),
            "piece size not a power of two" => Encode(1, len4, PieceSize + 1, k, h4),
            "piece size too big for int32" => Encode(1, len4, (ulong)uint.MaxValue + 1, k, h4),
            "piece size 1" => Encode(1, 4L, 1, k, h4),
            "length with more than int.MaxValue pieces" => Encode(1, 1L << 62, PieceSize, k, []),
            "length long.MaxValue" => Encode(1, long.MaxValue, 16 * 1024 * 1024, k, []),
            "nil key" => Encode(1, len4, PieceSize, null, h4),
            "empty key" => Encode(1, len4, PieceSize, [], h4),
            "key too long" => Encode(1, len4, PieceSize, new byte[Manifest.MaxPublicKeyLength + 1], h4),
            "nil hashes" => Encode(1, len4, PieceSize, k, null),
            "hashes too long for the length" => Encode(1, len4, PieceSize, k, new byte[5 * Hash256.Size]),
            "array header of 4 billion" => [0xDD, 0xFF, 0xFF, 0xFF, 0xFF],
            _ => throw new ArgumentException(name),
        };
        var e = Record.Exception(() => Manifest.Decode(bytes));
        Assert.NotNull(e);
        Assert.True(e is InvalidDataException, $"expected InvalidDataException, got {e.GetType().FullName}: {e.Message}");
    }
}
