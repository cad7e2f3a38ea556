using BenchmarkDotNet.Running;

namespace Swarm.Benchmarks;

/// <summary>
/// Entry point. Run every suite with short jobs (about 4 minutes on 2 cores):
/// <c>dotnet run -c Release --project Swarm.Benchmarks -- --filter '*'</c>.
/// Every suite defaults to BenchmarkDotNet's ShortRun job (see <see cref="BenchConfig"/>); pass <c>--job medium</c> or
/// <c>--job long</c> for tighter error bars, <c>--filter '*Hash*'</c> for one suite, <c>--list flat</c> to see them all.
/// <c>dht 100 500 2000</c> instead runs the DHT network benchmark (<see cref="DhtLookupBenchmark"/>), and
/// <c>swarm 4 8 16 32</c> the in-process swarm benchmark (<see cref="SwarmBenchmark"/>), <c>transport 512</c> the
/// plaintext-against-encrypted transport probe (<see cref="TransportProbe"/>).
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "dht") return await DhtLookupBenchmark.RunAsync(args[1..]).ConfigureAwait(false);
        if (args.Length > 0 && args[0] == "transport") return await TransportProbe.RunAsync(args[1..]).ConfigureAwait(false);
        if (args.Length > 0 && args[0] == "swarm") return await SwarmBenchmark.RunAsync(args[1..]).ConfigureAwait(false);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
