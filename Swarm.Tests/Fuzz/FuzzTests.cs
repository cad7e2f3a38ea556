namespace Swarm.Tests.Fuzz;

/// <summary>
/// The short fuzzing run: for every decoder of untrusted bytes, its checked-in corpus and a fixed number of deterministic
/// mutations, each checked against the decoder's contract (only its documented failure, allocation within the declared
/// bound, no hang). The long campaign (afl-fuzz, bench/fuzz.sh) uses the same targets.
/// </summary>
public sealed class FuzzTests : IDisposable
{
    public void Dispose() => FuzzInputs.DeleteScratch();

    public static TheoryData<string> Targets => [.. FuzzTargets.All.Select(t => t.Name)];

    [Theory]
    [MemberData(nameof(Targets))]
    public void TheDecoderKeepsItsContractOverTheCorpusAndSeededMutations(string name)
    {
        var target = FuzzTargets.Get(name);
        var result = ShortRun.Run(target, target.ShortRunMutations, ShortRun.SeedOf(name), TimeSpan.FromSeconds(10));
        TestContext.Current.SendDiagnosticMessage($"{name}: {result.Executions} executions ({result.Accepted} accepted, {result.Rejected} rejected, {result.Known} known findings) in {result.Elapsed.TotalSeconds:F1} s");
        Assert.True(result.Violations.Count == 0, $"{name} ({target.Decoder}):\n" + string.Join("\n", result.Violations));
        Assert.True(result.Accepted > 0, $"{name}: no input was accepted; the corpus does not reach the decoder");
    }

    [Fact]
    public void EveryTargetHasACorpusAndEveryCorpusATarget()
    {
        string root = FuzzCorpus.Root();
        var folders = Directory.EnumerateDirectories(root).Select(d => Path.GetFileName(d)!).Order(StringComparer.Ordinal).ToList();
        var names = FuzzTargets.All.Select(t => t.Name).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(names, folders);
        foreach (var name in names) Assert.NotEmpty(FuzzCorpus.Load(name));
    }

    [Fact]
    public void TheMutatorIsDeterministic()
    {
        var corpus = new List<byte[]> { new byte[] { 1, 2, 3, 4, 5 }, "{\"a\":1}"u8.ToArray() };
        var a = new Mutator(42, corpus, ["xyz"], 64);
        var b = new Mutator(42, corpus, ["xyz"], 64);
        for (int i = 0; i < 1000; i++) Assert.Equal(a.Next(), b.Next());
    }
}
