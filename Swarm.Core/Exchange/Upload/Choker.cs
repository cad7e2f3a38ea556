namespace Swarm.Core.Exchange.Upload;

/// <summary>
/// Decides which interested peers we upload to: the <c>regularSlots</c> best by rank (tit for tat: the peers that give us the
/// most; or, when seeding, the peers that have received the least from us, a round robin), plus optimistic slots given to
/// other peers at random and rotated every <c>optimisticRotation</c>, so newcomers with nothing to offer get a start.
/// </summary>
public sealed class Choker<TPeer> where TPeer : class
{
    private readonly int _regularSlots;
    private readonly int _optimisticSlots;
    private readonly long _rotationMs;
    private readonly Random _random;
    private readonly List<TPeer> _optimistic = [];
    private long? _rotatedAt;

    public Choker(int regularSlots, int optimisticSlots, TimeSpan optimisticRotation, Random? random = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(regularSlots);
        ArgumentOutOfRangeException.ThrowIfNegative(optimisticSlots);
        _regularSlots = regularSlots;
        _optimisticSlots = optimisticSlots;
        _rotationMs = (long)optimisticRotation.TotalMilliseconds;
        _random = random ?? Random.Shared;
    }

    /// <summary>Regular slots opened above the configured ones because upload capacity was left unused (rate-based).</summary>
    public int ExtraSlots { get; set; }
    public int Slots => _regularSlots + ExtraSlots + _optimisticSlots;
    public IReadOnlyList<TPeer> Optimistic => _optimistic;

    /// <summary>Returns the peers to unchoke among the interested ones; higher <paramref name="rank"/> is better.</summary>
    /// <remarks>
    /// Extra slots go by <paramref name="need"/> when given (higher is needier, e.g. fewer pieces held), so capacity beyond the
    /// tit-for-tat slots feeds the peers that have least instead of making the rich richer.
    /// </remarks>
    public HashSet<TPeer> Decide(IReadOnlyList<TPeer> interested, Func<TPeer, double> rank, long nowMs, Func<TPeer, double>? need = null)
    {
        var unchoke = new HashSet<TPeer>(ReferenceEqualityComparer.Instance);
        foreach (var peer in interested.OrderByDescending(rank).Take(_regularSlots)) unchoke.Add(peer);
        if (ExtraSlots > 0)
            foreach (var peer in interested.Where(p => !unchoke.Contains(p)).OrderByDescending(need ?? rank).Take(ExtraSlots)) unchoke.Add(peer);

        _optimistic.RemoveAll(p => !interested.Contains(p) || unchoke.Contains(p));
        if (_rotatedAt is not { } at || nowMs - at >= _rotationMs)
        {
            _optimistic.Clear();
            _rotatedAt = nowMs;
        }
        var others = interested.Where(p => !unchoke.Contains(p) && !_optimistic.Contains(p)).ToList();
        while (_optimistic.Count < _optimisticSlots && others.Count > 0)
        {
            int i = _random.Next(others.Count);
            _optimistic.Add(others[i]);
            others.RemoveAt(i);
        }
        foreach (var p in _optimistic) unchoke.Add(p);
        return unchoke;
    }
}
