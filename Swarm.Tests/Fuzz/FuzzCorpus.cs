namespace Swarm.Tests.Fuzz;

/// <summary>The checked-in corpus: <c>Swarm.Tests/Fuzz/corpus/&lt;target&gt;/</c> in the source tree (or <c>$SWARM_FUZZ_CORPUS</c>).</summary>
public static class FuzzCorpus
{
    public static string Root()
    {
        if (Environment.GetEnvironmentVariable("SWARM_FUZZ_CORPUS") is { Length: > 0 } given) return given;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "Swarm.Tests", "Fuzz", "corpus");
            if (File.Exists(Path.Combine(dir.FullName, "Swarm.sln")) && Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException($"no Swarm.Tests/Fuzz/corpus above {AppContext.BaseDirectory}; set SWARM_FUZZ_CORPUS");
    }

    /// <summary>The seed files of a target, in name order.</summary>
    public static IReadOnlyList<(string Name, byte[] Bytes)> Load(string target)
    {
        string dir = Path.Combine(Root(), target);
        if (!Directory.Exists(dir)) return [];
        return [.. Directory.EnumerateFiles(dir).Order(StringComparer.Ordinal).Select(f => (Path.GetFileName(f), File.ReadAllBytes(f)))];
    }

    /// <summary>Writes every target's seeds under <paramref name="root"/> (what <c>Swarm.Fuzz --write-corpus</c> does).</summary>
    public static int Write(string root)
    {
        int count = 0;
        foreach (var (target, name, bytes) in CorpusSeeds.All())
        {
            string dir = Path.Combine(root, target);
            Directory.CreateDirectory(dir);
            File.WriteAllBytes(Path.Combine(dir, name), bytes);
            count++;
        }
        return count;
    }
}
