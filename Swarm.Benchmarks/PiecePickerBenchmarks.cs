using BenchmarkDotNet.Attributes;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Exchange.Download;

namespace Swarm.Benchmarks;

/// <summary>
/// Choosing the next piece to request from a peer: <see cref="PiecePicker.Pick"/> (rarest first from kept availability
/// counts, starting at a random piece so peers spread out) over content of 1,024 pieces seen by 12 peers that each hold
/// half of it, with a quarter of the pieces already verified. Baseline: the plainest rarest-first, a scan that counts each
/// piece's holders from the peers' bitfields at pick time (what keeping the counts saves).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(BenchConfig))]
public class PiecePickerBenchmarks
{
    private const int Pieces = 1024;
    private const int Peers = 12;
    private Bitfield[] _peers = [];
    private Bitfield _verified = null!;
    private PiecePicker _picker = null!;
    private Func<int, bool> _peerHas = null!;
    private Func<int, bool> _wanted = null!;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(11);
        _peers = new Bitfield[Peers];
        _picker = new PiecePicker(Pieces, new Random(5));
        for (int p = 0; p < Peers; p++)
        {
            _peers[p] = new Bitfield(Pieces);
            for (int i = 0; i < Pieces; i++) if (random.Next(2) == 0) _peers[p].Set(i);
            _picker.AddPeer(_peers[p]);
        }
        _verified = new Bitfield(Pieces);
        for (int i = 0; i < Pieces; i++) if (random.Next(4) == 0) _verified.Set(i);
        var asker = _peers[0];
        _peerHas = i => asker[i];
        _wanted = i => !_verified[i];
        if (Pick() < 0 || CountAtPickTime() < 0) throw new InvalidOperationException("nothing to pick");
    }

    [Benchmark(Baseline = true)]
    public int CountAtPickTime()
    {
        var asker = _peers[0];
        int best = -1, bestCount = int.MaxValue;
        for (int i = 0; i < Pieces; i++)
        {
            if (_verified[i] || !asker[i]) continue;
            int count = 0;
            foreach (var peer in _peers) if (peer[i]) count++;
            if (count < bestCount)
            {
                best = i;
                bestCount = count;
            }
        }
        return best;
    }

    [Benchmark]
    public int Pick() => _picker.Pick(_peerHas, _wanted, piecesDone: 256);
}
