using System.Buffers;
using MessagePack;
using System.Net;
using Swarm.Core.Content;

namespace Swarm.Core.Wire;

/// <summary>A message with a MessagePack header. Encoded and decoded by hand (no reflection), safe for untrusted input.</summary>
public interface IWireMessage<TSelf> where TSelf : IWireMessage<TSelf>
{
    static abstract MessageKind Kind { get; }
    void Write(ref MessagePackWriter writer);
    static abstract TSelf Read(ref MessagePackReader reader);
}

public static class WireMessage
{
    /// <summary>Decodes a frame body that must hold exactly one header of type <typeparamref name="T"/>.</summary>
    public static T Decode<T>(ReadOnlySequence<byte> body) where T : IWireMessage<T>
    {
        var message = DecodeHeader<T>(body, out long consumed);
        if (consumed != body.Length) throw new WireProtocolException($"{T.Kind} has {body.Length - consumed} trailing bytes");
        return message;
    }

    /// <summary>Decodes a header at the start of a body; <paramref name="consumed"/> is where the rest (block bytes) starts.</summary>
    public static T DecodeHeader<T>(ReadOnlySequence<byte> body, out long consumed) where T : IWireMessage<T>
    {
        try
        {
            var reader = new MessagePackReader(body);
            var message = T.Read(ref reader);
            consumed = reader.Consumed;
            return message;
        }
        catch (MessagePackSerializationException e)
        {
            throw new WireProtocolException($"malformed {T.Kind} message: {e.Message}", e);
        }
        catch (EndOfStreamException e)
        {
            throw new WireProtocolException($"truncated {T.Kind} message", e);
        }
        catch (OverflowException e)
        {
            throw new WireProtocolException($"malformed {T.Kind} message: {e.Message}", e);
        }
        catch (InvalidDataException e)
        {
            throw new WireProtocolException($"invalid {T.Kind} message: {e.Message}", e);
        }
    }

    internal static void ExpectFields(ref MessagePackReader reader, int count, MessageKind kind)
    {
        int n = reader.ReadArrayHeader();
        if (n != count) throw new InvalidDataException($"{kind} has {n} fields, expected {count}");
    }

    internal static byte[] ReadBytes(ref MessagePackReader reader, int maxLength, string field)
    {
        var seq = reader.ReadBytes() ?? throw new InvalidDataException($"{field} is missing");
        if (seq.Length > maxLength) throw new InvalidDataException($"{field} is {seq.Length} bytes, at most {maxLength} allowed");
        return seq.ToArray();
    }

    internal static Hash256 ReadHash(ref MessagePackReader reader, string field)
    {
        var seq = reader.ReadBytes() ?? throw new InvalidDataException($"{field} is missing");
        if (seq.Length != Hash256.Size) throw new InvalidDataException($"{field} must be {Hash256.Size} bytes");
        Span<byte> b = stackalloc byte[Hash256.Size];
        seq.CopyTo(b);
        return new Hash256(b);
    }

    internal static void WriteHash(ref MessagePackWriter writer, Hash256 hash)
    {
        Span<byte> b = stackalloc byte[Hash256.Size];
        hash.CopyTo(b);
        writer.Write(b);
    }

    internal static int ReadNonNegative(ref MessagePackReader reader, string field)
    {
        int v = reader.ReadInt32();
        if (v < 0) throw new InvalidDataException($"{field} is negative");
        return v;
    }
}

/// <summary>First message each way: who I am, which content, and a fresh nonce for the other side to sign.</summary>
public readonly record struct Hello(int Version, Hash256 NodeId, byte[] PublicKey, byte[] Nonce, Hash256 ContentId, int ListenPort) : IWireMessage<Hello>
{
    public const int NonceLength = 32;
    public static MessageKind Kind => MessageKind.Hello;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(6);
        writer.Write(Version);
        WireMessage.WriteHash(ref writer, NodeId);
        writer.Write(PublicKey);
        writer.Write(Nonce);
        WireMessage.WriteHash(ref writer, ContentId);
        writer.Write(ListenPort);
    }
    public static Hello Read(ref MessagePackReader reader)
    {
        WireMessage.ExpectFields(ref reader, 6, Kind);
        int version = reader.ReadInt32();
        var nodeId = WireMessage.ReadHash(ref reader, "node id");
        var key = WireMessage.ReadBytes(ref reader, Manifest.MaxPublicKeyLength, "public key");
        var nonce = WireMessage.ReadBytes(ref reader, NonceLength, "nonce");
        if (nonce.Length != NonceLength) throw new InvalidDataException("nonce must be 32 bytes");
        var content = WireMessage.ReadHash(ref reader, "content id");
        int port = reader.ReadInt32();
        if (port is < 0 or > 65535) throw new InvalidDataException("listen port out of range");
        return new Hello(version, nodeId, key, nonce, content, port);
    }
}

/// <summary>The signature over the other side's nonce that proves the sender holds the key behind its node id.</summary>
public readonly record struct HelloProof(byte[] Signature) : IWireMessage<HelloProof>
{
    public static MessageKind Kind => MessageKind.HelloProof;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(1);
        writer.Write(Signature);
    }
    public static HelloProof Read(ref MessagePackReader reader)
    {
        WireMessage.ExpectFields(ref reader, 1, Kind);
        return new HelloProof(WireMessage.ReadBytes(ref reader, 128, "signature"));
    }
}

public readonly record struct BitfieldMessage(byte[] Bits) : IWireMessage<BitfieldMessage>
{
    public static MessageKind Kind => MessageKind.Bitfield;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(1);
        writer.Write(Bits);
    }
    public static BitfieldMessage Read(ref MessagePackReader reader)
    {
        WireMessage.ExpectFields(ref reader, 1, Kind);
        return new BitfieldMessage(WireMessage.ReadBytes(ref reader, WireLimits.MaxBitfieldBytes, "bitfield"));
    }
}

public readonly record struct Have(int Piece) : IWireMessage<Have>
{
    public static MessageKind Kind => MessageKind.Have;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(1);
        writer.Write(Piece);
    }
    public static Have Read(ref MessagePackReader reader)
    {
        WireMessage.ExpectFields(ref reader, 1, Kind);
        return new Have(WireMessage.ReadNonNegative(ref reader, "piece"));
    }
}

/// <summary>Asks for one block. Answered by exactly one <see cref="BlockHeader"/> frame or one <see cref="Reject"/>.</summary>
public readonly record struct Request(int Piece, int Offset, int Length) : IWireMessage<Request>
{
    public static MessageKind Kind => MessageKind.Request;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(3);
        writer.Write(Piece);
        writer.Write(Offset);
        writer.Write(Length);
    }
    public static Request Read(ref MessagePackReader reader)
    {
        WireMessage.ExpectFields(ref reader, 3, Kind);
        return new Request(WireMessage.ReadNonNegative(ref reader, "piece"), WireMessage.ReadNonNegative(ref reader, "offset"), WireMessage.ReadNonNegative(ref reader, "length"));
    }
}

public readonly record struct Cancel(int Piece, int Offset, int Length) : IWireMessage<Cancel>
{
    public static MessageKind Kind => MessageKind.Cancel;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(3);
        writer.Write(Piece);
        writer.Write(Offset);
        writer.Write(Length);
    }
    public static Cancel Read(ref MessagePackReader reader)
    {
        WireMessage.ExpectFields(ref reader, 3, Kind);
        return new Cancel(WireMessage.ReadNonNegative(ref reader, "piece"), WireMessage.ReadNonNegative(ref reader, "offset"), WireMessage.ReadNonNegative(ref reader, "length"));
    }
}

public readonly record struct Reject(int Piece, int Offset, int Length, RejectReason Reason) : IWireMessage<Reject>
{
    public static MessageKind Kind => MessageKind.Reject;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(4);
        writer.Write(Piece);
        writer.Write(Offset);
        writer.Write(Length);
        writer.Write((int)Reason);
    }
    public static Reject Read(ref MessagePackReader reader)
    {
        WireMessage.ExpectFields(ref reader, 4, Kind);
        return new Reject(reader.ReadInt32(), reader.ReadInt32(), reader.ReadInt32(), (RejectReason)reader.ReadInt32());
    }
}

/// <summary>Header of a block frame; the block's bytes follow it raw, never through MessagePack.</summary>
public readonly record struct BlockHeader(int Piece, int Offset) : IWireMessage<BlockHeader>
{
    public const int MaxEncodedLength = 16;
    public static MessageKind Kind => MessageKind.Block;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(2);
        writer.Write(Piece);
        writer.Write(Offset);
    }
    public static BlockHeader Read(ref MessagePackReader reader)
    {
        WireMessage.ExpectFields(ref reader, 2, Kind);
        return new BlockHeader(WireMessage.ReadNonNegative(ref reader, "piece"), WireMessage.ReadNonNegative(ref reader, "offset"));
    }
}

/// <summary>The manifest (every piece hash) and the ingester's signature over its id.</summary>
public readonly record struct Hashes(byte[] Manifest, byte[] Signature) : IWireMessage<Hashes>
{
    public static MessageKind Kind => MessageKind.Hashes;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(2);
        writer.Write(Manifest);
        writer.Write(Signature);
    }
    public static Hashes Read(ref MessagePackReader reader)
    {
        WireMessage.ExpectFields(ref reader, 2, Kind);
        return new Hashes(WireMessage.ReadBytes(ref reader, WireLimits.MaxManifestLength, "manifest"), WireMessage.ReadBytes(ref reader, 128, "signature"));
    }
}

/// <summary>Peer exchange: where other peers of this content accept connections (as BEP 11), so a swarm meshes without waiting for the DHT.</summary>
public readonly record struct PeerList(IReadOnlyList<IPEndPoint> Peers) : IWireMessage<PeerList>
{
    public static MessageKind Kind => MessageKind.PeerList;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(Peers.Count);
        Span<byte> address = stackalloc byte[16];
        foreach (var p in Peers)
        {
            writer.WriteArrayHeader(2);
            p.Address.TryWriteBytes(address, out int n);
            writer.Write(address[..n]);
            writer.Write(p.Port);
        }
    }
    public static PeerList Read(ref MessagePackReader reader)
    {
        int count = reader.ReadArrayHeader();
        if (count > WireLimits.MaxPeerListEntries) throw new InvalidDataException($"peer list of {count} entries, at most {WireLimits.MaxPeerListEntries}");
        var peers = new List<IPEndPoint>(count);
        for (int i = 0; i < count; i++)
        {
            WireMessage.ExpectFields(ref reader, 2, Kind);
            var bytes = WireMessage.ReadBytes(ref reader, 16, "address");
            if (bytes.Length is not (4 or 16)) throw new InvalidDataException("address must be 4 or 16 bytes");
            int port = reader.ReadInt32();
            if (port is < 1 or > 65535) throw new InvalidDataException("port out of range");
            peers.Add(new IPEndPoint(new IPAddress(bytes), port));
        }
        return new PeerList(peers);
    }
}

/// <summary>One live piece hash with the ingester's signature over it.</summary>
public readonly record struct SignedPieceHash(int Piece, byte[] Hash, byte[] Signature);

/// <summary>Live content: signed hashes of pieces the sender holds; each is checked against the ingester's key.</summary>
public readonly record struct PieceHashes(IReadOnlyList<SignedPieceHash> Entries) : IWireMessage<PieceHashes>
{
    public static MessageKind Kind => MessageKind.PieceHashes;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(Entries.Count);
        foreach (var e in Entries)
        {
            writer.WriteArrayHeader(3);
            writer.Write(e.Piece);
            writer.Write(e.Hash);
            writer.Write(e.Signature);
        }
    }
    public static PieceHashes Read(ref MessagePackReader reader)
    {
        int count = reader.ReadArrayHeader();
        if (count > WireLimits.MaxPieceHashEntries) throw new InvalidDataException($"{count} piece hashes in one message, at most {WireLimits.MaxPieceHashEntries}");
        var entries = new List<SignedPieceHash>(count);
        for (int i = 0; i < count; i++)
        {
            WireMessage.ExpectFields(ref reader, 3, Kind);
            int piece = WireMessage.ReadNonNegative(ref reader, "piece");
            var hash = WireMessage.ReadBytes(ref reader, Hash256.Size, "hash");
            var signature = WireMessage.ReadBytes(ref reader, EcdsaSignature.Length, "signature");
            if (hash.Length != Hash256.Size || signature.Length != EcdsaSignature.Length) throw new InvalidDataException("piece hash or signature has the wrong length");
            entries.Add(new SignedPieceHash(piece, hash, signature));
        }
        return new PieceHashes(entries);
    }
}

/// <summary>Live content: the ingester's signature over the sealed manifest (checked once every piece hash is known).</summary>
public readonly record struct Seal(byte[] Signature) : IWireMessage<Seal>
{
    public static MessageKind Kind => MessageKind.Seal;
    public void Write(ref MessagePackWriter writer)
    {
        writer.WriteArrayHeader(1);
        writer.Write(Signature);
    }
    public static Seal Read(ref MessagePackReader reader)
    {
        WireMessage.ExpectFields(ref reader, 1, Kind);
        return new Seal(WireMessage.ReadBytes(ref reader, EcdsaSignature.Length, "signature"));
    }
}
