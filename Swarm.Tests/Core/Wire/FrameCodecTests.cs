using System.Buffers;
using System.Buffers.Binary;
using Swarm.Core.Content;
using Swarm.Core.Wire;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Wire;

public sealed class FrameCodecTests
{
    private static readonly (MessageKind Kind, byte[] Body)[] Frames = BuildFrames();

    private static (MessageKind, byte[])[] BuildFrames()
    {
        var block = new byte[1000];
        new Random(3).NextBytes(block);
        byte[] blockBody = [.. RawPeer.Encode(new BlockHeader(7, PieceLayout.BlockSize)), .. block];
        return
        [
            (MessageKind.KeepAlive, []),
            (MessageKind.Hello, RawPeer.Encode(new Hello(1, Hash256.Random(), new byte[91], new byte[32], Hash256.Random(), 7400))),
            (MessageKind.HaveAll, []),
            (MessageKind.Have, RawPeer.Encode(new Have(3))),
            (MessageKind.Block, blockBody),
            (MessageKind.KeepAlive, []),
            (MessageKind.Request, RawPeer.Encode(new Request(1, 0, PieceLayout.BlockSize))),
            (MessageKind.Bitfield, RawPeer.Encode(new BitfieldMessage([0xF0, 0x0F, 0x80]))),
            (MessageKind.Unchoke, []),
        ];
    }

    private static byte[] Wire => [.. Frames.SelectMany(f => f.Kind == MessageKind.KeepAlive ? new byte[4] : RawPeer.Frame(f.Kind, f.Body))];

    /// <summary>Takes every whole frame off the buffer; checks that a false return leaves the buffer untouched.</summary>
    private static List<(MessageKind, byte[])> ReadAll(ref ReadOnlySequence<byte> buffer)
    {
        var frames = new List<(MessageKind, byte[])>();
        while (true)
        {
            var before = buffer;
            if (!FrameCodec.TryReadFrame(ref buffer, out var frame))
            {
                Assert.Equal(before.Length, buffer.Length);
                Assert.True(before.Start.Equals(buffer.Start), "a partial frame must not be consumed");
                return frames;
            }
            frames.Add((frame.Kind, frame.Body.ToArray()));
        }
    }

    private static void AssertFrames(IReadOnlyList<(MessageKind Kind, byte[] Body)> actual)
    {
        Assert.Equal(Frames.Length, actual.Count);
        for (int i = 0; i < Frames.Length; i++)
        {
            Assert.Equal(Frames[i].Kind, actual[i].Kind);
            Assert.Equal(Frames[i].Body, actual[i].Body);
        }
    }

    [Fact]
    public void Whole_buffer_gives_every_frame()
    {
        var buffer = new ReadOnlySequence<byte>(Wire);
        AssertFrames(ReadAll(ref buffer));
        Assert.True(buffer.IsEmpty);
    }

    /// <summary>As a pipe delivers it: the first k bytes, then the rest appended. Every k gives the same frames.</summary>
    [Fact]
    public void Every_split_point_gives_the_same_frames()
    {
        byte[] wire = Wire;
        for (int k = 0; k <= wire.Length; k++)
        {
            var first = new ReadOnlySequence<byte>(wire, 0, k);
            var frames = ReadAll(ref first);
            long consumed = k - first.Length;
            var rest = new ReadOnlySequence<byte>(wire, (int)consumed, wire.Length - (int)consumed);
            frames.AddRange(ReadAll(ref rest));
            Assert.True(rest.IsEmpty, $"split at {k}: {rest.Length} bytes left");
            AssertFrames(frames);
        }
    }

    /// <summary>The same bytes as a sequence of two segments split at every point, and as one segment per byte.</summary>
    [Fact]
    public void Multi_segment_sequences_give_the_same_frames()
    {
        byte[] wire = Wire;
        for (int k = 0; k <= wire.Length; k++)
        {
            var buffer = Segments.Of(wire[..k], wire[k..]);
            AssertFrames(ReadAll(ref buffer));
            Assert.True(buffer.IsEmpty);
        }
        var bytewise = Segments.Of([.. wire.Select(b => new[] { b })]);
        AssertFrames(ReadAll(ref bytewise));
        Assert.True(bytewise.IsEmpty);
    }

    [Fact]
    public void Keep_alive_is_four_zero_bytes_with_an_empty_body()
    {
        var buffer = new ReadOnlySequence<byte>(new byte[] { 0, 0, 0, 0, 0, 0, 0 });
        Assert.True(FrameCodec.TryReadFrame(ref buffer, out var frame));
        Assert.Equal(MessageKind.KeepAlive, frame.Kind);
        Assert.True(frame.Body.IsEmpty);
        Assert.Equal(3, buffer.Length);
        Assert.False(FrameCodec.TryReadFrame(ref buffer, out _)); // three zero bytes: not yet a frame
        Assert.Equal(3, buffer.Length);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(4)]
    public void Fewer_bytes_than_a_prefix_need_more(int have)
    {
        byte[] frame = RawPeer.Frame(new Have(1));
        var buffer = new ReadOnlySequence<byte>(frame, 0, have);
        Assert.False(FrameCodec.TryReadFrame(ref buffer, out _));
        Assert.Equal(have, buffer.Length);
    }

    public static TheoryData<MessageKind> KnownKinds => new(Enum.GetValues<MessageKind>().Where(k => k != MessageKind.KeepAlive));

    [Theory]
    [MemberData(nameof(KnownKinds))]
    public void Each_kind_has_a_maximum_checked_from_the_prefix_alone(MessageKind kind)
    {
        int max = WireLimits.MaxFrame(kind);
        Assert.InRange(max, 2, WireLimits.MaxFrameLength);

        // At the maximum: accepted, waiting for the body.
        var atMax = new ReadOnlySequence<byte>(Prefix((uint)max, (byte)kind));
        Assert.False(FrameCodec.TryReadFrame(ref atMax, out _));

        // One over: refused before any of the body is there.
        var over = new ReadOnlySequence<byte>(Prefix((uint)max + 1, (byte)kind));
        Assert.Throws<WireProtocolException>(() => FrameCodec.TryReadFrame(ref over, out _));
    }

    [Fact]
    public void Maximums_fit_what_the_protocol_sends()
    {
        Assert.True(WireLimits.MaxFrame(MessageKind.Block) >= 1 + BlockHeader.MaxEncodedLength + WireLimits.MaxBlockLength);
        Assert.True(WireLimits.MaxFrame(MessageKind.Hashes) >= 1 + WireLimits.MaxManifestLength + 128 + 16);
        Assert.True(WireLimits.MaxFrame(MessageKind.Bitfield) >= 1 + WireLimits.MaxBitfieldBytes + 5);
        var key = new byte[Manifest.MaxPublicKeyLength];
        int hello = RawPeer.Encode(new Hello(int.MaxValue, Hash256.Random(), key, new byte[32], Hash256.Random(), 65535)).Length;
        Assert.True(WireLimits.MaxFrame(MessageKind.Hello) >= 1 + hello, $"largest valid hello is {hello} bytes");
        int request = RawPeer.Encode(new Reject(int.MaxValue, int.MaxValue, int.MaxValue, RejectReason.ShuttingDown)).Length;
        Assert.True(WireLimits.MaxFrame(MessageKind.Reject) >= 1 + request);
    }

    [Theory]
    [InlineData(0)]   // kind 0 with a body
    [InlineData(20)]
    [InlineData(255)]
    public void Unknown_kind_is_refused_from_the_prefix(byte kind)
    {
        var buffer = new ReadOnlySequence<byte>(Prefix(10, kind));
        Assert.Throws<WireProtocolException>(() => FrameCodec.TryReadFrame(ref buffer, out _));
    }

    [Theory]
    [InlineData(0xFFFFFFFFu)]
    [InlineData(0x80000000u)]
    [InlineData((uint)WireLimits.MaxFrameLength + 1)]
    public void Length_over_the_frame_maximum_is_refused_from_four_bytes(uint length)
    {
        var prefix = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(prefix, length);
        var buffer = new ReadOnlySequence<byte>(prefix);
        Assert.Throws<WireProtocolException>(() => FrameCodec.TryReadFrame(ref buffer, out _));
    }

    [Fact]
    public void WritePrefix_matches_the_reader()
    {
        var bytes = new byte[FrameCodec.PrefixLength + 3];
        FrameCodec.WritePrefix(bytes, MessageKind.Have, 3);
        bytes[5] = 0x91; bytes[6] = 0x05; bytes[7] = 0x00;
        var buffer = new ReadOnlySequence<byte>(bytes, 0, 7);
        Assert.False(FrameCodec.TryReadFrame(ref buffer, out _));
        buffer = new ReadOnlySequence<byte>(bytes);
        Assert.True(FrameCodec.TryReadFrame(ref buffer, out var frame));
        Assert.Equal(MessageKind.Have, frame.Kind);
        Assert.Equal(new byte[] { 0x91, 0x05, 0x00 }, frame.Body.ToArray());
        Assert.True(buffer.IsEmpty);
    }

    private static byte[] Prefix(uint length, byte kind)
    {
        var prefix = new byte[FrameCodec.PrefixLength];
        BinaryPrimitives.WriteUInt32BigEndian(prefix, length);
        prefix[4] = kind;
        return prefix;
    }

    private sealed class Segments : ReadOnlySequenceSegment<byte>
    {
        private Segments(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public static ReadOnlySequence<byte> Of(params byte[][] parts)
        {
            var first = new Segments(parts[0], 0);
            var last = first;
            foreach (var part in parts.Skip(1))
            {
                var next = new Segments(part, last.RunningIndex + last.Memory.Length);
                last.Next = next;
                last = next;
            }
            return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
        }
    }
}
