using System.Buffers;
using System.Buffers.Binary;
using MessagePack;

namespace Swarm.Core.Wire;

/// <summary>A parsed frame: its kind and body (MessagePack header, and for blocks the raw bytes after it). Valid until the reader advances.</summary>
public readonly record struct Frame(MessageKind Kind, ReadOnlySequence<byte> Body);

/// <summary>
/// Framing: 4-byte big-endian length, then that many bytes: a kind byte and the body.
/// </summary>
public static class FrameCodec
{
    public const int PrefixLength = 5;

    /// <summary>
    /// Takes one whole frame off the front of <paramref name="buffer"/>. Returns false when more bytes are needed.
    /// Throws <see cref="WireProtocolException"/> as soon as the prefix shows an unknown kind or a length over that kind's maximum,
    /// so nothing of an oversized frame is ever buffered.
    /// </summary>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, out Frame frame) => TryReadFrame(ref buffer, out frame, null);

    /// <summary>As above; with <paramref name="only"/> set, any other kind is refused from the prefix (handshake phase).</summary>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, out Frame frame, MessageKind? only)
    {
        frame = default;
        if (buffer.Length < 4) return false;
        Span<byte> prefix = stackalloc byte[PrefixLength];
        int have = (int)Math.Min(PrefixLength, buffer.Length);
        buffer.Slice(0, have).CopyTo(prefix);
        uint length = BinaryPrimitives.ReadUInt32BigEndian(prefix);
        if (length == 0)
        {
            frame = new Frame(MessageKind.KeepAlive, ReadOnlySequence<byte>.Empty);
            buffer = buffer.Slice(4);
            return true;
        }
        if (length > WireLimits.MaxFrameLength) throw new WireProtocolException($"frame length {length} exceeds the maximum {WireLimits.MaxFrameLength}");
        if (have < PrefixLength) return false;
        var kind = (MessageKind)prefix[4];
        int max = WireLimits.MaxFrame(kind);
        if (max == 0) throw new WireProtocolException($"unknown message kind {(byte)kind}");
        if (only != null && kind != only) throw new WireProtocolException($"expected {only}, got {kind}");
        if (length > max) throw new WireProtocolException($"{kind} frame of {length} bytes exceeds its maximum {max}");
        if (buffer.Length < 4 + length) return false;
        frame = new Frame(kind, buffer.Slice(PrefixLength, length - 1));
        buffer = buffer.Slice(4 + length);
        return true;
    }

    /// <summary>
    /// The kind and length (kind byte + body) of the frame at the front of <paramref name="buffer"/>, once its 5-byte
    /// prefix is in; false for fewer bytes and for a keep-alive (length 0). Checks nothing: <see cref="TryReadFrame(ref ReadOnlySequence{byte}, out Frame)"/> does.
    /// </summary>
    public static bool TryPeekPrefix(ReadOnlySequence<byte> buffer, out MessageKind kind, out int length)
    {
        kind = default;
        length = 0;
        if (buffer.Length < PrefixLength) return false;
        Span<byte> prefix = stackalloc byte[PrefixLength];
        buffer.Slice(0, PrefixLength).CopyTo(prefix);
        uint raw = BinaryPrimitives.ReadUInt32BigEndian(prefix);
        if (raw == 0 || raw > int.MaxValue) return false;
        kind = (MessageKind)prefix[4];
        length = (int)raw;
        return true;
    }

    /// <summary>Writes a frame prefix for a body of <paramref name="bodyLength"/> bytes.</summary>
    public static void WritePrefix(Span<byte> destination, MessageKind kind, int bodyLength)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)(bodyLength + 1));
        destination[4] = (byte)kind;
    }

    /// <summary>Writes a whole frame: prefix, then the message's MessagePack header (encoded through <paramref name="scratch"/> to learn its length).</summary>
    public static void WriteMessage<T>(IBufferWriter<byte> output, ArrayBufferWriter<byte> scratch, T message) where T : IWireMessage<T>
    {
        scratch.ResetWrittenCount();
        var w = new MessagePackWriter(scratch);
        message.Write(ref w);
        w.Flush();
        int bodyLength = scratch.WrittenCount;
        var span = output.GetSpan(PrefixLength + bodyLength);
        WritePrefix(span, T.Kind, bodyLength);
        scratch.WrittenSpan.CopyTo(span[PrefixLength..]);
        output.Advance(PrefixLength + bodyLength);
    }

    /// <summary>
    /// Writes a block frame: prefix, header, then <paramref name="length"/> bytes that <paramref name="fill"/> writes straight
    /// into the output (for example a positional read from the data file), so block bytes are copied once.
    /// </summary>
    public static void WriteBlock<TState>(IBufferWriter<byte> output, ArrayBufferWriter<byte> scratch, BlockHeader header, int length, TState state, Action<TState, Span<byte>> fill)
    {
        scratch.ResetWrittenCount();
        var w = new MessagePackWriter(scratch);
        header.Write(ref w);
        w.Flush();
        int headerLength = scratch.WrittenCount;
        int total = PrefixLength + headerLength + length;
        var span = output.GetSpan(total);
        WritePrefix(span, MessageKind.Block, headerLength + length);
        scratch.WrittenSpan.CopyTo(span[PrefixLength..]);
        fill(state, span.Slice(PrefixLength + headerLength, length));
        output.Advance(total);
    }
}
