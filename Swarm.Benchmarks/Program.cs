using BenchmarkDotNet.Running;

namespace Swarm.Benchmarks;

/// <summary>
/// Entry point. Run every suite with short jobs (about 4 minutes on 2 cores):
/// <c>dotnet run -c Release --project Swarm.Benchmarks -- --filter '*'</c>.
/// Every suite defaults to BenchmarkDotNet's ShortRun job (see <see cref="BenchConfig"/>); pass <c>--job medium</c> or
/// <c>--job long</c> for tighter error bars, <c>--filter '*Hash*'</c> for one suite, <c>--list flat</c> to see them all.
/// </summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
