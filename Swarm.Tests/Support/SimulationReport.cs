using Swarm.Core.Dht;

namespace Swarm.Tests.Support;

/// <summary>Outcome of a batch of lookups in a <see cref="DhtSimulation"/>.</summary>
internal sealed record SimulationReport(
    int Lookups, int Succeeded, int TimedOut,
    double RoundsMedian, double RoundsP99, double QueriesMedian, double QueriesP99,
    TimeSpan LatencyMedian, TimeSpan LatencyP99, TimeSpan LatencyMax)
{
    public double SuccessRate => Lookups == 0 ? 0 : (double)Succeeded / Lookups;

    public override string ToString() =>
        $"{Lookups} lookups, {SuccessRate:P1} ok, {TimedOut} timed out; rounds median {RoundsMedian} p99 {RoundsP99}; " +
        $"queries median {QueriesMedian} p99 {QueriesP99}; latency median {LatencyMedian.TotalMilliseconds:0.0} ms p99 {LatencyP99.TotalMilliseconds:0.0} ms max {LatencyMax.TotalMilliseconds:0.0} ms";

    internal static SimulationReport From(IReadOnlyList<(LookupResult Lookup, bool Ok)> results)
    {
        var rounds = results.Select(r => (double)r.Lookup.Rounds).Order().ToList();
        var queries = results.Select(r => (double)r.Lookup.Queries).Order().ToList();
        var latency = results.Select(r => r.Lookup.Duration).Order().ToList();
        return new SimulationReport(results.Count, results.Count(r => r.Ok), results.Count(r => r.Lookup.TimedOut),
            Percentile(rounds, 0.5), Percentile(rounds, 0.99), Percentile(queries, 0.5), Percentile(queries, 0.99),
            Percentile(latency, 0.5), Percentile(latency, 0.99), latency.Count == 0 ? TimeSpan.Zero : latency[^1]);
    }

    private static T Percentile<T>(List<T> sorted, double p) where T : struct =>
        sorted.Count == 0 ? default : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
}
