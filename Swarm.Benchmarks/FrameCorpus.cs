using System.Buffers;
using MessagePack;
using Swarm.Core.Content;
using Swarm.Core.Wire;

namespace Swarm.Benchmarks;

/// <summary>
/// Builds frames with the same code <see cref="FrameConnection"/> uses (<see cref="FrameCodec.WriteMessage{T}"/> and
/// <see cref="FrameCodec.WriteBlock{TState}"/>): the MessagePack header into a scratch <see cref="ArrayBufferWriter{T}"/>,
/// then prefix, header and (for blocks) the raw block bytes into the output writer in one GetSpan/Advance.
/// </summary>
internal static class FrameCorpus
{
    /// <summary>Frames handled per benchmark invocation; results are per frame (OperationsPerInvoke).</summary>
    public const int FramesPerInvoke = 64;
    public const int BlockLength = PieceLayout.BlockSize;
    private const int BlocksPerPiece = 1024 * 1024 / BlockLength;

    /// <summary>Realistic field values: pieces of a ~1 GiB content at 1 MiB pieces, offsets inside a piece.</summary>
    public static Request RequestAt(int i) => new(700 + i / BlocksPerPiece, i % BlocksPerPiece * BlockLength, BlockLength);
    public static Have HaveAt(int i) => new(700 + i);
    public static BlockHeader BlockAt(int i) => new(700 + i / BlocksPerPiece, i % BlocksPerPiece * BlockLength);

    /// <summary>
    /// Writes frame <paramref name="i"/> of the given kind. Block frame i carries bytes [i * 128 KiB, (i + 1) * 128 KiB) of
    /// <paramref name="blockSource"/> (see <see cref="RandomSource"/>), so a batch reads as many distinct bytes as it
    /// writes, like the seed's positional reads of different blocks, and is comparable with a memcpy of the batch.
    /// </summary>
    public static void WriteFrame(IBufferWriter<byte> output, ArrayBufferWriter<byte> scratch, MessageKind kind, int i, byte[] blockSource)
    {
        switch (kind)
        {
            case MessageKind.Request:
                FrameCodec.WriteMessage(output, scratch, RequestAt(i));
                break;
            case MessageKind.Have:
                FrameCodec.WriteMessage(output, scratch, HaveAt(i));
                break;
            case MessageKind.Block:
                FrameCodec.WriteBlock(output, scratch, BlockAt(i), BlockLength, (Source: blockSource, Offset: i * BlockLength),
                    static (s, span) => s.Source.AsSpan(s.Offset, span.Length).CopyTo(span));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "only Request, Have and Block frames are benchmarked");
        }
    }

    /// <summary><see cref="FramesPerInvoke"/> frames of one kind, back to back.</summary>
    public static byte[] Build(MessageKind kind, byte[] blockSource)
    {
        var output = new ArrayBufferWriter<byte>();
        var scratch = new ArrayBufferWriter<byte>(256);
        for (int i = 0; i < FramesPerInvoke; i++) WriteFrame(output, scratch, kind, i, blockSource);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>Random bytes for <see cref="FramesPerInvoke"/> blocks (8 MiB).</summary>
    public static byte[] RandomSource()
    {
        var bytes = new byte[FramesPerInvoke * BlockLength];
        new Random(42).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Average encoded length of one frame (prefix included).</summary>
    public static long FrameLength(MessageKind kind) => Build(kind, new byte[FramesPerInvoke * BlockLength]).Length / FramesPerInvoke;

    /// <summary>A sequence over <paramref name="bytes"/> cut into segments of <paramref name="segmentSize"/> bytes (no copy), as a PipeReader hands them out.</summary>
    public static ReadOnlySequence<byte> Segmented(byte[] bytes, int segmentSize)
    {
        if (bytes.Length <= segmentSize) return new ReadOnlySequence<byte>(bytes);
        var first = new Segment(bytes.AsMemory(0, segmentSize), 0);
        var last = first;
        for (int start = segmentSize; start < bytes.Length; start += segmentSize)
            last = last.Append(bytes.AsMemory(start, Math.Min(segmentSize, bytes.Length - start)));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
