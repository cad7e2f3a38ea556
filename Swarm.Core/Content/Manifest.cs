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

    /// <summary>
    /// A live manifest: what an ingester publishes while it still reads the origin. Its id commits to the length, piece
    /// size, ingester key, task key and the origin's validator, but not to piece hashes, which arrive one by one, each
    /// signed by the ingester (<see cref="PieceHashPayload"/>). When every hash is known, <see cref="Seal"/> gives the
    /// ordinary manifest of the same bytes.
    /// </summary>
    public static Manifest Live(long length, int pieceSize, byte[] ingesterKey, Hash256 taskKey, string validator) =>
        new(length, pieceSize, ingesterKey, taskKey, validator);

    private Manifest(long length, int pieceSize, byte[] ingesterKey, Hash256 taskKey, string validator)
    {
        Layout = new PieceLayout(length, pieceSize);
        if (ingesterKey.Length == 0 || ingesterKey.Length > MaxPublicKeyLength) throw new InvalidDataException("manifest ingester key has a bad length");
        if (validator.Length > MaxValidatorLength) throw new InvalidDataException("live manifest validator is too long");
        _pieceHashes = new byte[Layout.PieceCount * Hash256.Size];
        _live = new LiveState(Layout.PieceCount);
        IngesterKey = ingesterKey;
        TaskKey = taskKey;
        Validator = validator;
        Encoded = EncodeLive();
        Id = new ContentId(Hash256.Of(Encoded));
    }

    public const int LiveVersion = 2;
    /// <summary>Pieces a live manifest may declare: as many as a complete manifest can list (4 TiB at 16 MiB pieces).</summary>
    public const int MaxLivePieces = 256 * 1024;
    public const int MaxValidatorLength = 256;

    private sealed class LiveState(int pieces)
    {
        public readonly bool[] Known = new bool[pieces];
        public readonly byte[] Signatures = new byte[pieces * EcdsaSignature.Length];
        public readonly Lock Sync = new();
    }

    private readonly LiveState? _live;

    /// <summary>True for a live manifest (piece hashes still arriving).</summary>
    public bool IsLive => _live != null;
    /// <summary>For a live manifest: the task (URL) it is an ingest of.</summary>
    public Hash256 TaskKey { get; }
    /// <summary>For a live manifest: the origin's ETag or Last-Modified (or a random nonce when it gave neither).</summary>
    public string Validator { get; } = "";

    /// <summary>Whether this piece's hash is known (always, for an ordinary manifest).</summary>
    public bool HasPieceHash(int piece) => _live == null || Volatile.Read(ref _live.Known[piece]);

    /// <summary>The ingester's signature over a live piece hash; only valid when <see cref="HasPieceHash"/>.</summary>
    public ReadOnlySpan<byte> PieceSignature(int piece) =>
        _live == null ? throw new InvalidOperationException("not a live manifest") : _live.Signatures.AsSpan(piece * EcdsaSignature.Length, EcdsaSignature.Length);

    /// <summary>What the ingester signs for one piece of a live manifest.</summary>
    public byte[] PieceHashPayload(int piece, ReadOnlySpan<byte> hash)
    {
        byte[] tag = "swarm/piece/v1"u8.ToArray();
        var payload = new byte[tag.Length + Hash256.Size + 4 + Hash256.Size];
        tag.CopyTo(payload, 0);
        Id.Value.CopyTo(payload.AsSpan(tag.Length));
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(tag.Length + Hash256.Size), piece);
        hash.CopyTo(payload.AsSpan(tag.Length + Hash256.Size + 4));
        return payload;
    }

    /// <summary>
    /// Learns a live piece hash from a peer: true when the signature is the ingester's (or the same hash is already
    /// known), false when it is not — the sender lies.
    /// </summary>
    public bool TryAddPieceHash(int piece, ReadOnlySpan<byte> hash, ReadOnlySpan<byte> signature)
    {
        if (_live == null || (uint)piece >= (uint)Layout.PieceCount || hash.Length != Hash256.Size || signature.Length != EcdsaSignature.Length) return false;
        if (HasPieceHash(piece)) return PieceHash(piece).SequenceEqual(hash);
        if (!EcdsaSignature.Verify(IngesterKey, PieceHashPayload(piece, hash), signature)) return false;
        SetPieceHash(piece, hash, signature);
        return true;
    }

    /// <summary>Sets a live piece hash without checking (the ingester's own, or read back from this node's store).</summary>
    public void SetPieceHash(int piece, ReadOnlySpan<byte> hash, ReadOnlySpan<byte> signature)
    {
        var live = _live ?? throw new InvalidOperationException("not a live manifest");
        lock (live.Sync)
        {
            if (live.Known[piece]) return;
            hash.CopyTo(_pieceHashes.AsSpan(piece * Hash256.Size));
            signature.CopyTo(live.Signatures.AsSpan(piece * EcdsaSignature.Length));
            Volatile.Write(ref live.Known[piece], true);
        }
    }

    /// <summary>The ordinary manifest of a live one whose every piece hash is known; null while some are missing.</summary>
    public Manifest? Seal()
    {
        if (_live == null) return this;
        for (int i = 0; i < Layout.PieceCount; i++) if (!HasPieceHash(i)) return null;
        return new Manifest(Layout.Length, Layout.PieceSize, _pieceHashes, IngesterKey);
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
        if (data.Length != Layout.PieceLength(piece) || !HasPieceHash(piece)) return false;
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

    private byte[] EncodeLive()
    {
        var buffer = new ArrayBufferWriter<byte>(128 + IngesterKey.Length + Validator.Length * 3);
        var w = new MessagePackWriter(buffer);
        w.WriteArrayHeader(6);
        w.Write(LiveVersion);
        w.Write(Layout.Length);
        w.Write(Layout.PieceSize);
        w.Write(IngesterKey);
        w.Write(TaskKey.ToArray());
        w.Write(Validator);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Decodes and validates manifest bytes from an untrusted source.</summary>
    public static Manifest Decode(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            var r = new MessagePackReader(bytes);
            int fields = r.ReadArrayHeader();
            int version = r.ReadInt32();
            if (version == LiveVersion && fields == 6) return DecodeLive(ref r);
            if (fields != 5) throw new InvalidDataException("manifest: wrong field count");
            if (version != Version) throw new InvalidDataException($"manifest version {version} is not supported (this build reads versions {Version} and {LiveVersion})");
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

    private static Manifest DecodeLive(ref MessagePackReader r)
    {
        long length = r.ReadInt64();
        int pieceSize = r.ReadInt32();
        byte[] key = ReadBytes(ref r, MaxPublicKeyLength);
        if (!PieceLayout.IsValidPieceSize(pieceSize) || length < 0) throw new InvalidDataException("manifest: bad length or piece size");
        // Checked before anything is allocated for the pieces (about 100 bytes each): an 80-byte manifest declaring 2^25
        // pieces took 3 GiB (found by fuzzing). The same bound as for a complete manifest's piece list.
        if (length / pieceSize + (length % pieceSize != 0 ? 1 : 0) > MaxLivePieces)
            throw new InvalidDataException($"live manifest declares more than {MaxLivePieces} pieces");
        byte[] task = ReadBytes(ref r, Hash256.Size);
        if (task.Length != Hash256.Size) throw new InvalidDataException("live manifest: bad task key");
        string validator = r.ReadString() ?? "";
        if (!r.End) throw new InvalidDataException("manifest: trailing bytes");
        return new Manifest(length, pieceSize, key, new Hash256(task), validator);
    }

    private static byte[] ReadBytes(ref MessagePackReader r, int max)
    {
        var seq = r.ReadBytes() ?? throw new InvalidDataException("manifest: missing bytes field");
        if (seq.Length > max) throw new InvalidDataException("manifest: field too long");
        return seq.ToArray();
    }
}
