using Swarm.Core.Sources;
using BenchmarkDotNet.Attributes;
using Swarm.Core.Content;
using Swarm.Core.Identity;
using Swarm.Core.Storage;

namespace Swarm.Benchmarks;

/// <summary>
/// The cost of the at-rest check (issue #13): serving 1 GiB from the store as wire blocks, every 128 KiB block read into
/// one 4 KiB-aligned send buffer, through the plain <see cref="StoredContent.Read"/> (what uploads used before) against
/// <see cref="StoredContent.ReadVerified"/> (each block checked in the buffer against its unit tag, recorded when the
/// content was ingested). The page cache is warm (the content was just written and is read again each iteration), so
/// the difference is the check.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(warmupCount: 1, iterationCount: 5)]
[Config(typeof(BenchConfig))]
public class VerifiedReadBenchmarks
{
    public const long Length = 1L << 30;
    private string _root = "";
    private NodeKey _key = null!;
    private StoredContent _content = null!;
    private AlignedBuffer _block = null!;

    [GlobalSetup]
    public void Setup()
    {
        _root = Path.Combine(Path.GetTempPath(), "swarm-bench-" + Guid.NewGuid().ToString("N"));
        var store = new ContentStore(_root);
        _key = NodeKey.LoadOrCreate(Path.Combine(_root, "key"));
        using var source = new PseudoRandomStream(Length);
        _content = Ingest.StreamAsync(store, source, Length, "bench", _key, null, CancellationToken.None).GetAwaiter().GetResult();
        _block = AlignedBuffer.Rent(PieceLayout.BlockSize);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _content.Dispose();
        AlignedBuffer.Return(_block);
        _key.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    [Benchmark(Baseline = true)]
    public long PlainRead()
    {
        long total = 0;
        var span = _block.Span[..PieceLayout.BlockSize];
        for (long at = 0; at < Length; at += PieceLayout.BlockSize) total += _content.Read(at, span);
        return total;
    }

    [Benchmark]
    public long VerifiedRead()
    {
        long total = 0;
        var span = _block.Span[..PieceLayout.BlockSize];
        for (long at = 0; at < Length; at += PieceLayout.BlockSize) total += _content.ReadVerified(at, span);
        return total;
    }

    /// <summary>Cheap deterministic bytes (not zeros, so nothing is special-cased by the file system).</summary>
    private sealed class PseudoRandomStream(long length) : Stream
    {
        private long _position;
        private ulong _state = 0x9E3779B97F4A7C15;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
        public override int Read(Span<byte> buffer)
        {
            int n = (int)Math.Min(buffer.Length, length - _position);
            for (int i = 0; i < n; i++)
            {
                _state ^= _state << 13;
                _state ^= _state >> 7;
                _state ^= _state << 17;
                buffer[i] = (byte)_state;
            }
            _position += n;
            return n;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
