using System.Diagnostics;

namespace Swarm.Tests.Fuzz;

/// <summary>
/// The in-process mutation fuzzer: every corpus seed, then a fixed number of seeded mutations, through
/// <see cref="FuzzExecutor"/>. Used by <see cref="FuzzTests"/> (the short run) and by <c>Swarm.Fuzz inproc</c>.
/// </summary>
public static class ShortRun
{
    /// <summary>A stable seed per target (string.GetHashCode differs between processes).</summary>
    public static int SeedOf(string name)
    {
        uint h = 2166136261;
        foreach (char c in name) h = (h ^ c) * 16777619;
        return (int)(h & 0x7fffffff);
    }

    public sealed record Result(string Target, long Executions, long Accepted, long Rejected, long Known, List<string> Violations, TimeSpan Slowest, TimeSpan Elapsed, long MaxAllocation);

    /// <summary>Runs the corpus and <paramref name="mutations"/> mutated cases; keeps the first few new violations.</summary>
    public static Result Run(FuzzTarget target, long mutations, int seed, TimeSpan hangAfter, int keep = 5)
    {
        var corpus = FuzzCorpus.Load(target.Name).Select(c => c.Bytes).ToList();
        if (corpus.Count == 0) throw new InvalidOperationException($"no corpus for {target.Name} under {FuzzCorpus.Root()}");
        var mutator = new Mutator(seed, corpus, target.Tokens, target.MaxInput);
        long executions = 0, accepted = 0, rejected = 0, known = 0, maxAllocation = 0;
        var violations = new List<string>();
        var slowest = TimeSpan.Zero;
        var watch = Stopwatch.StartNew();
        void One(byte[] input, string what)
        {
            executions++;
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                var (outcome, elapsed) = FuzzExecutor.ExecuteTimed(target, input);
                if (outcome == FuzzOutcome.Accepted) accepted++; else rejected++;
                if (elapsed > slowest) slowest = elapsed;
                if (elapsed > hangAfter && violations.Count < keep)
                    violations.Add($"{what}: {elapsed.TotalSeconds:F1} s for one input (hang?): {Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 256)))}");
            }
            catch (FuzzViolationException v)
            {
                if (KnownFindings.Match(v, input) != null) known++;
                else if (violations.Count < keep)
                    violations.Add($"{what}: {v.Message}\n  input ({input.Length} bytes): {Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 512)))}\n  {v.InnerException?.ToString().Replace("\n", "\n  ", StringComparison.Ordinal)}");
            }
            maxAllocation = Math.Max(maxAllocation, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        for (int i = 0; i < corpus.Count; i++) One(corpus[i], $"seed {i}");
        for (long i = 0; i < mutations; i++) One(mutator.Next(), $"mutation {i} (seed {seed})");
        return new Result(target.Name, executions, accepted, rejected, known, violations, slowest, watch.Elapsed, maxAllocation);
    }
}
