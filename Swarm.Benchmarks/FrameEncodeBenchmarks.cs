using System.Buffers;
using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;
using Swarm.Core.Wire;

namespace Swarm.Benchmarks;

/// <summary>
/// Sending side: encoding Request, Have and Block frames the way <see cref="FrameConnection"/> does. Times are per frame.
/// <list type="bullet">
/// <item><c>Memcpy</c> (baseline): copying the already-encoded bytes of the same frames into the output.</item>
/// <item><c>EncodeToBufferWriter</c>: MessagePack header into the scratch writer, then prefix + header (+ block bytes
/// copied from an 8 MiB source, a different 128 KiB for each frame, standing in for the positional read from the data file) into an ArrayBufferWriter.</item>
/// <item><c>EncodeToPipe</c>: the same into a <see cref="Pipe"/> with FrameConnection's options, one FlushAsync per frame
/// (as SendAsync / SendBlockAsync do) and a reader that drains it (the send loop, without the socket).</item>
/// </list>
/// </summary>
[MemoryDiagnoser]
[Config(typeof(BenchConfig))]
public class FrameEncodeBenchmarks
{
    private byte[] _source = [];
    private byte[] _encoded = [];
    private ArrayBufferWriter<byte> _output = null!;
    private readonly ArrayBufferWriter<byte> _scratch = new(256);
    private Pipe _pipe = null!;

    [Params(MessageKind.Request, MessageKind.Have, MessageKind.Block)]
    public MessageKind Kind { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _source = FrameCorpus.RandomSource();
        _encoded = FrameCorpus.Build(Kind, _source);
        _output = new ArrayBufferWriter<byte>(_encoded.Length + 4096);
        _pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 4 * 1024 * 1024, resumeWriterThreshold: 2 * 1024 * 1024,
            minimumSegmentSize: 64 * 1024, useSynchronizationContext: false));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _pipe.Writer.Complete();
        _pipe.Reader.Complete();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = FrameCorpus.FramesPerInvoke)]
    public int Memcpy()
    {
        _output.ResetWrittenCount();
        _encoded.AsSpan().CopyTo(_output.GetSpan(_encoded.Length));
        _output.Advance(_encoded.Length);
        return _output.WrittenCount;
    }

    [Benchmark(OperationsPerInvoke = FrameCorpus.FramesPerInvoke)]
    public int EncodeToBufferWriter()
    {
        _output.ResetWrittenCount();
        for (int i = 0; i < FrameCorpus.FramesPerInvoke; i++) FrameCorpus.WriteFrame(_output, _scratch, Kind, i, _source);
        return _output.WrittenCount;
    }

    [Benchmark(OperationsPerInvoke = FrameCorpus.FramesPerInvoke)]
    public long EncodeToPipe()
    {
        var writer = _pipe.Writer;
        var reader = _pipe.Reader;
        long total = 0;
        for (int i = 0; i < FrameCorpus.FramesPerInvoke; i++)
        {
            FrameCorpus.WriteFrame(writer, _scratch, Kind, i, _source);
            var flush = writer.FlushAsync();
            if (!flush.IsCompleted) throw new InvalidOperationException("the pipe applied back-pressure; the reader should have drained it");
            flush.GetAwaiter().GetResult();
            if (!reader.TryRead(out var read)) throw new InvalidOperationException("nothing to read after a flush");
            total += read.Buffer.Length;
            reader.AdvanceTo(read.Buffer.End);
        }
        return total;
    }
}
