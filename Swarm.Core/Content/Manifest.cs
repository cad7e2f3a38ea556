using System.Buffers;
using System.Security.Cryptography;
using MessagePack;

namespace Swarm.Core.Content;

/// <summary>
/// What a content id stands for: length, piece size, every piece's SHA-256 and the ingester's public key.
/// The content id is the SHA-256 of the manifest's MessagePack encoding, so the id commits to every piece hash.
/// </summary>
public sealed class Manifest
{
    public const int Version = 1;
    public const int MaxPublicKeyLength = 512;

    private readonly byte[] _pieceHashes;

    public Manifest(long length, int pieceSize, ReadOnlySpan<byte> pieceHashes, byte[] ingesterKey)
    {
        Layout = new PieceLayout(length, pieceSize);
        if (pieceHashes.Length != Layout.PieceCount * Hash256.Size)
            throw new InvalidDataException($"manifest has {pieceHashes.Length / Hash256.Size} piece hashes for {Layout.PieceCount} pieces");
        if (ingesterKey.Length == 0 || ingesterKey.Length > MaxPublicKeyLength) throw new InvalidDataException("manifest ingester key has a bad length");
        _pieceHashes = pieceHashes.ToArray();
        IngesterKey = ingesterKey;
        Encoded = Encode();
        Id = new ContentId(Hash256.Of(Encoded));
    }

    public PieceLayout Layout { get; }
    public long Length => Layout.Length;
    public int PieceSize => Layout.PieceSize;
    public int PieceCount => Layout.PieceCount;
    public byte[] IngesterKey { get; }
    public ContentId Id { get; }
    /// <summary>The canonical bytes; <see cref="Id"/> is their SHA-256.</summary>
    public byte[] Encoded { get; }

    public ReadOnlySpan<byte> PieceHash(int piece) => _pieceHashes.AsSpan(piece * Hash256.Size, Hash256.Size);

    public bool VerifyPiece(int piece, ReadOnlySpan<byte> data)
    {
        if (data.Length != Layout.PieceLength(piece)) return false;
        Span<byte> h = stackalloc byte[Hash256.Size];
        SHA256.HashData(data, h);
        return CryptographicOperations.FixedTimeEquals(h, PieceHash(piece));
    }

    /// <summary>What the ingester signs to vouch for the piece hashes: a domain tag and the content id.</summary>
    public byte[] SignedPayload()
    {
        byte[] tag = "swarm/manifest/v1"u8.ToArray();
        var payload = new byte[tag.Length + Hash256.Size];
        tag.CopyTo(payload, 0);
        Id.Value.CopyTo(payload.AsSpan(tag.Length));
        return payload;
    }

    public bool VerifySignature(ReadOnlySpan<byte> signature) => EcdsaSignature.Verify(IngesterKey, SignedPayload(), signature);

    private byte[] Encode()
    {
        var buffer = new ArrayBufferWriter<byte>(64 + _pieceHashes.Length + IngesterKey.Length);
        var w = new MessagePackWriter(buffer);
        w.WriteArrayHeader(5);
        w.Write(Version);
        w.Write(Layout.Length);
        w.Write(Layout.PieceSize);
        w.Write(IngesterKey);
        w.Write(_pieceHashes);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Decodes and validates manifest bytes from an untrusted source.</summary>
    public static Manifest Decode(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            var r = new MessagePackReader(bytes);
            if (r.ReadArrayHeader() != 5) throw new InvalidDataException("manifest: wrong field count");
            int version = r.ReadInt32();
            if (version != Version) throw new InvalidDataException($"manifest version {version} is not supported (this build reads version {Version})");
            long length = r.ReadInt64();
            int pieceSize = r.ReadInt32();
            byte[] key = ReadBytes(ref r, MaxPublicKeyLength);
            if (!PieceLayout.IsValidPieceSize(pieceSize) || length < 0) throw new InvalidDataException("manifest: bad length or piece size");
            var layout = new PieceLayout(length, pieceSize);
            byte[] hashes = ReadBytes(ref r, (int)Math.Min(int.MaxValue, (long)layout.PieceCount * Hash256.Size));
            if (!r.End) throw new InvalidDataException("manifest: trailing bytes");
            var manifest = new Manifest(length, pieceSize, hashes, key);
            return manifest;
        }
        catch (MessagePackSerializationException e)
        {
            throw new InvalidDataException("manifest is not valid MessagePack: " + e.Message, e);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException("manifest is truncated", e);
        }
        catch (Exception e) when (e is OverflowException or ArgumentException)
        {
            throw new InvalidDataException("manifest has an out-of-range field: " + e.Message, e);
        }
    }

    private static byte[] ReadBytes(ref MessagePackReader r, int max)
    {
        var seq = r.ReadBytes() ?? throw new InvalidDataException("manifest: missing bytes field");
        if (seq.Length > max) throw new InvalidDataException("manifest: field too long");
        return seq.ToArray();
    }
}
