using System.Diagnostics;
using System.Globalization;
using Swarm.Tests.Support;

namespace Swarm.Benchmarks;

/// <summary>
/// End-to-end DHT benchmark (not a BenchmarkDotNet suite: a network of real UDP nodes on loopback is too heavy for its
/// repetitions). For each network size it starts N in-process nodes, runs one random find-node lookup from every node
/// (checked against the true k closest) and a provider lookup of one announced key from every node, and prints lookup
/// rounds, latency (median, p99) and success rate as a Markdown table.
/// Run: <c>dotnet run -c Release --project Swarm.Benchmarks -- dht 100 500 2000</c>
/// </summary>
internal static class DhtLookupBenchmark
{
    public static async Task<int> RunAsync(IReadOnlyList<string> sizes)
    {
        var counts = sizes.Count > 0 ? sizes.Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToList() : [100, 500, 2000];
        Console.WriteLine("| nodes | join s | lookup | success | rounds median | rounds p99 | latency median | latency p99 |");
        Console.WriteLine("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (int n in counts)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(10));
            var clock = Stopwatch.StartNew();
            await using var sim = await DhtSimulation.StartAsync(n, DhtSimulation.LoopbackOptions(), cts.Token).ConfigureAwait(false);
            double join = clock.Elapsed.TotalSeconds;
            var (findNode, providers) = await sim.RunStandardAsync(cts.Token).ConfigureAwait(false);
            Row(n, join, "find-node (exact k closest)", findNode);
            Row(n, join, "find-providers", providers);
        }
        return 0;
    }

    private static void Row(int n, double join, string kind, SimulationReport r) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {n} | {join:0.0} | {kind} | {r.SuccessRate:P1} | {r.RoundsMedian} | {r.RoundsP99} | {r.LatencyMedian.TotalMilliseconds:0} ms | {r.LatencyP99.TotalMilliseconds:0} ms |"));
}
