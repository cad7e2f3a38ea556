using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Swarm.Core.Content;

namespace Swarm.Benchmarks;

/// <summary>
/// Piece verification: <see cref="Manifest.VerifyPiece"/> (length check, SHA-256, constant-time compare) against the
/// baseline of <see cref="SHA256.HashData(ReadOnlySpan{byte}, Span{byte})"/> on the same bytes, so the ratio is our
/// overhead. Piece sizes are the smallest (256 KiB), a typical (1 MiB, content of ~1 GiB) and a large (4 MiB) one.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(BenchConfig))]
public class PieceHashBenchmarks
{
    private byte[] _piece = [];
    private readonly byte[] _hash = new byte[Hash256.Size];
    private Manifest _manifest = null!;

    [Params(256 * 1024, 1024 * 1024, 4 * 1024 * 1024)]
    public int PieceSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _piece = new byte[PieceSize];
        new Random(7).NextBytes(_piece);
        // Three whole pieces; the one verified is piece 1 (not the first, not the short last one).
        var hashes = new byte[3 * Hash256.Size];
        for (int i = 0; i < 3; i++) SHA256.HashData(_piece, hashes.AsSpan(i * Hash256.Size, Hash256.Size));
        _manifest = new Manifest(3L * PieceSize, PieceSize, hashes, ingesterKey: new byte[65]);
        if (!_manifest.VerifyPiece(1, _piece)) throw new InvalidOperationException("piece does not verify");
    }

    [Benchmark(Baseline = true)]
    public byte Sha256HashData()
    {
        SHA256.HashData(_piece, _hash);
        return _hash[0];
    }

    [Benchmark]
    public bool VerifyPiece() => _manifest.VerifyPiece(1, _piece);
}
