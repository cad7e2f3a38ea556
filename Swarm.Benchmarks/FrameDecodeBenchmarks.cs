using System.Buffers;
using BenchmarkDotNet.Attributes;
using Swarm.Core.Wire;

namespace Swarm.Benchmarks;

/// <summary>
/// Receiving side: a buffer of 64 frames of one kind parsed the way FrameConnection.ReceiveAsync and PeerSession do:
/// <see cref="FrameCodec.TryReadFrame"/>, then <see cref="WireMessage.Decode{T}"/> for Request / Have, or
/// <see cref="WireMessage.DecodeHeader{T}"/> for a Block followed by copying its payload into a piece buffer (as
/// ContentSwarm.OnBlock does). Times are per frame. Baseline: a memcpy of the same bytes.
/// <c>Segmented</c>: the sequence is cut into 256 KiB segments, as the socket PipeReader (256 KiB buffers) hands it
/// out, so about half the block frames straddle two segments; otherwise one contiguous array.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(BenchConfig))]
public class FrameDecodeBenchmarks
{
    private const int SegmentSize = 256 * 1024;
    private byte[] _encoded = [];
    private byte[] _destination = [];
    private ReadOnlySequence<byte> _sequence;

    [Params(MessageKind.Request, MessageKind.Have, MessageKind.Block)]
    public MessageKind Kind { get; set; }

    [Params(false, true)]
    public bool Segmented { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _encoded = FrameCorpus.Build(Kind, FrameCorpus.RandomSource());
        _destination = new byte[_encoded.Length];
        _sequence = Segmented ? FrameCorpus.Segmented(_encoded, SegmentSize) : new ReadOnlySequence<byte>(_encoded);
        if (Parse() == 0) throw new InvalidOperationException("corpus did not parse");
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = FrameCorpus.FramesPerInvoke)]
    public int Memcpy()
    {
        _sequence.CopyTo(_destination);
        return _destination[^1];
    }

    [Benchmark(OperationsPerInvoke = FrameCorpus.FramesPerInvoke)]
    public long Parse()
    {
        var buffer = _sequence;
        long check = 0;
        int frames = 0;
        while (FrameCodec.TryReadFrame(ref buffer, out var frame))
        {
            frames++;
            switch (frame.Kind)
            {
                case MessageKind.Request:
                    var request = WireMessage.Decode<Request>(frame.Body);
                    check += request.Piece + request.Offset + request.Length;
                    break;
                case MessageKind.Have:
                    check += WireMessage.Decode<Have>(frame.Body).Piece;
                    break;
                case MessageKind.Block:
                    var header = WireMessage.DecodeHeader<BlockHeader>(frame.Body, out long consumed);
                    var payload = frame.Body.Slice(consumed);
                    payload.CopyTo(_destination.AsSpan(frames * FrameCorpus.BlockLength - FrameCorpus.BlockLength, (int)payload.Length));
                    check += header.Piece + header.Offset;
                    break;
                default:
                    throw new InvalidOperationException($"unexpected {frame.Kind}");
            }
        }
        if (!buffer.IsEmpty || frames != FrameCorpus.FramesPerInvoke) throw new InvalidOperationException("corpus not fully parsed");
        return check;
    }
}
