#if SWARM_FUZZ_RUNNER
// The afl-fuzz entry point (Swarm.Tests/Fuzz/Swarm.Fuzz.csproj); Swarm.Tests compiles this file to nothing.
using System.Text;
using SharpFuzz;
using Swarm.Tests.Fuzz;

namespace Swarm.Fuzz;

public static class Program
{
    private const string Usage = """
        Swarm.Fuzz list                        the targets, one a line: name, then what it fuzzes
        Swarm.Fuzz afl TARGET                  run under afl-fuzz, with Swarm.Core/Swarm.Node instrumented by sharpfuzz (SharpFuzz's persistent fork server; SWARM_FUZZ_OUT_OF_PROCESS=1 for
                                               Fuzzer.OutOfProcess.Run); SWARM_FUZZ_KNOWN=ignore counts known findings as passes
        Swarm.Fuzz inproc TARGET N [SEED]      N seeded mutations of the corpus in process, without coverage (no afl-fuzz needed)
        Swarm.Fuzz replay TARGET FILE...       run files (afl's crashes, hangs or queue) through the target and say what each does
        Swarm.Fuzz dict TARGET FILE            write the target's words as an afl-fuzz dictionary
        Swarm.Fuzz write-corpus DIR            write every target's seeds (from the code's encoders) as DIR/<target>/<name>
        All but afl need the uninstrumented build: instrumented code outside Fuzzer.Run has no coverage map to write to.
        """;

    public static int Main(string[] args)
    {
        try
        {
            return args switch
            {
                ["list"] => List(),
                ["afl", var t] => Afl(t),
                ["inproc", var t, var n] => InProcess(FuzzTargets.Get(t), long.Parse(n, System.Globalization.CultureInfo.InvariantCulture), null),
                ["inproc", var t, var n, var s] => InProcess(FuzzTargets.Get(t), long.Parse(n, System.Globalization.CultureInfo.InvariantCulture),
                    int.Parse(s, System.Globalization.CultureInfo.InvariantCulture)),
                ["replay", var t, .. var files] when files.Length > 0 => Replay(FuzzTargets.Get(t), files),
                ["dict", var t, var file] => Dictionary(FuzzTargets.Get(t), file),
                ["write-corpus", var dir] => WriteCorpus(dir),
                _ => Fail(Usage),
            };
        }
        finally
        {
            FuzzInputs.DeleteScratch();
        }
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine(message);
        return 2;
    }

    private static int List()
    {
        foreach (var t in FuzzTargets.All) Console.WriteLine($"{t.Name}\t{t.Decoder}");
        return 0;
    }

    private static byte[] ReadAll(Stream stream, int max)
    {
        using var memory = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int n;
        while (memory.Length <= max && (n = stream.Read(buffer, 0, buffer.Length)) > 0) memory.Write(buffer, 0, n);
        return memory.ToArray();
    }

    /// <summary>
    /// Instrumented code writes coverage into the map Fuzzer.Run sets up, so nothing of Swarm.Core or Swarm.Node may run
    /// before it: the target is looked up in the first execution.
    /// </summary>
    private static int Afl(string name)
    {
        bool ignoreKnown = Environment.GetEnvironmentVariable("SWARM_FUZZ_KNOWN") == "ignore";
        FuzzTarget? target = null;
        void One(Stream stream)
        {
            target ??= FuzzTargets.Get(name);
            byte[] input = ReadAll(stream, target.MaxInput);
            try
            {
                FuzzExecutor.Execute(target, input);
            }
            catch (FuzzViolationException v) when (ignoreKnown && KnownFindings.Match(v, input) != null)
            {
            }
        }
        if (Environment.GetEnvironmentVariable("SWARM_FUZZ_OUT_OF_PROCESS") == "1") Fuzzer.OutOfProcess.Run(One);
        else Fuzzer.Run(One);
        return 0;
    }

    private static int InProcess(FuzzTarget target, long mutations, int? seed)
    {
        var r = ShortRun.Run(target, mutations, seed ?? ShortRun.SeedOf(target.Name), TimeSpan.FromSeconds(10), keep: 20);
        Console.WriteLine($"{r.Target}\texecutions={r.Executions}\taccepted={r.Accepted}\trejected={r.Rejected}\tknown={r.Known}\tviolations={r.Violations.Count}"
            + $"\tslowest_ms={r.Slowest.TotalMilliseconds:F1}\tmax_alloc={r.MaxAllocation}\tseconds={r.Elapsed.TotalSeconds:F1}\texecs_per_sec={r.Executions / Math.Max(0.001, r.Elapsed.TotalSeconds):F0}");
        foreach (var v in r.Violations) Console.WriteLine(v);
        return r.Violations.Count == 0 ? 0 : 1;
    }

    private static int Replay(FuzzTarget target, string[] files)
    {
        int fresh = 0;
        foreach (var file in files)
        {
            byte[] input = File.ReadAllBytes(file);
            string verdict;
            try
            {
                var (outcome, elapsed) = FuzzExecutor.ExecuteTimed(target, input);
                verdict = $"{outcome.ToString().ToLowerInvariant()} ({elapsed.TotalMilliseconds:F1} ms)";
            }
            catch (FuzzViolationException v)
            {
                var known = KnownFindings.Match(v, input);
                if (known == null) fresh++;
                verdict = known != null ? $"known {known.Id}" : $"NEW {v.Message}\n{v.InnerException}";
            }
            Console.WriteLine($"{file}\t{verdict}");
        }
        return fresh == 0 ? 0 : 1;
    }

    private static int Dictionary(FuzzTarget target, string file)
    {
        var text = new StringBuilder();
        int i = 0;
        foreach (var token in target.Tokens.Distinct(StringComparer.Ordinal))
        {
            text.Append('w').Append(i++).Append("=\"");
            foreach (char c in token)
            {
                if (c is >= ' ' and <= '~' and not '"' and not '\\') text.Append(c);
                else text.Append("\\x").Append(((int)c).ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
            }
            text.Append("\"\n");
        }
        File.WriteAllText(file, text.ToString());
        return 0;
    }

    private static int WriteCorpus(string dir)
    {
        Console.WriteLine($"{FuzzCorpus.Write(dir)} seeds written under {dir}");
        return 0;
    }
}
#endif
