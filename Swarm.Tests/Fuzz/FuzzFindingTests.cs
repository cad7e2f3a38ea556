namespace Swarm.Tests.Fuzz;

/// <summary>
/// One test per decoder bug the fuzzers found: its input, under <c>Swarm.Tests/Fuzz/findings/&lt;id&gt;</c>, run through
/// its target without the guard. Open findings (<see cref="KnownFindings.All"/>) fail until fixed; fixed ones
/// (<see cref="KnownFindings.Fixed"/>) stay as regression tests.
/// </summary>
public sealed class FuzzFindingTests
{
    public static TheoryData<string> Findings => [.. KnownFindings.All.Select(f => f.Id), .. KnownFindings.Fixed.Select(f => f.Id)];

    public static string FindingsRoot() => Path.Combine(Path.GetDirectoryName(FuzzCorpus.Root())!, "findings");

    [Theory]
    [MemberData(nameof(Findings))]
    public void TheDecoderKeepsItsContractOnAFoundInput(string id)
    {
        var open = KnownFindings.All.SingleOrDefault(f => f.Id == id);
        var (target, summary) = open != null ? (open.Targets[0], open.Summary) : KnownFindings.Fixed.Single(f => f.Id == id) is var f ? (f.Target, f.Summary) : default;
        byte[] input = File.ReadAllBytes(Path.Combine(FindingsRoot(), id));
        var violation = Record.Exception(() => FuzzExecutor.Execute(FuzzTargets.Get(target), input, guard: false));
        Assert.True(violation == null, $"{id} ({summary}) fails: {violation?.Message}\n{violation?.InnerException}");
    }
}
