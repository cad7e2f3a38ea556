using BenchmarkDotNet.Attributes;
using Microsoft.Win32.SafeHandles;
using Swarm.Core.Content;
using Swarm.Core.Storage;

namespace Swarm.Benchmarks;

/// <summary>
/// Storing a verified piece: <see cref="StoredContent.CommitVerifiedPiece"/> (O_DIRECT write from a 4 KiB-aligned pooled
/// buffer where the file system allows it, then a journal record) of 1 MiB pieces into a fresh store entry. Baseline: a
/// plain buffered <see cref="RandomAccess.Write(SafeFileHandle, ReadOnlySpan{byte}, long)"/> of the same bytes at the same
/// offsets (what the store did before O_DIRECT). Each iteration writes 64 new pieces (64 MiB) into new files.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(BenchConfig))]
public class BlockWriteBenchmarks
{
    private const int PieceSize = 1024 * 1024;
    private const int Pieces = 64;
    private string _root = "";
    private AlignedBuffer _buffer = null!;
    private ContentStore _store = null!;
    private StoredContent? _content;
    private SafeFileHandle? _plain;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        _root = Path.Combine(Path.GetTempPath(), "swarm-bench-" + Guid.NewGuid().ToString("N"));
        _store = new ContentStore(_root);
        _buffer = AlignedBuffer.Rent(PieceSize);
        new Random(3).NextBytes(_buffer.Span[..PieceSize]);
    }

    [IterationSetup]
    public void FreshFiles()
    {
        IterationCleanup();
        // A new entry each iteration (random hashes make a new id): every piece written is new to the file.
        var hashes = new byte[Pieces * Hash256.Size];
        Random.Shared.NextBytes(hashes);
        _content = _store.OpenOrCreate(new Manifest((long)Pieces * PieceSize, PieceSize, hashes, new byte[65]), new byte[64]);
        _content.AcquireWriter();
        _plain = File.OpenHandle(Path.Combine(_root, "plain-" + Guid.NewGuid().ToString("N")), FileMode.CreateNew, FileAccess.ReadWrite);
        _next = 0;
    }

    [IterationCleanup]
    public void IterationCleanup()
    {
        if (_content != null)
        {
            string dir = _content.Directory;
            _content.Dispose();
            Directory.Delete(dir, recursive: true);
            _content = null;
        }
        _plain?.Dispose();
        _plain = null;
        foreach (var f in Directory.EnumerateFiles(_root, "plain-*")) File.Delete(f);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        IterationCleanup();
        AlignedBuffer.Return(_buffer);
        Directory.Delete(_root, recursive: true);
    }

    [Benchmark(Baseline = true)]
    [InvocationCount(Pieces, 1)]
    public void BufferedWrite() => RandomAccess.Write(_plain!, _buffer.Span[..PieceSize], (long)(_next++ % Pieces) * PieceSize);

    [Benchmark]
    [InvocationCount(Pieces, 1)]
    public void CommitPiece() => _content!.CommitVerifiedPiece(_next++ % Pieces, _buffer.Span[..PieceSize]);
}
