namespace Swarm.Tests.Fuzz;

/// <summary>
/// One test per decoder bug the fuzzers found (<see cref="KnownFindings"/>): its input, under
/// <c>Swarm.Tests/Fuzz/findings/&lt;id&gt;</c>, run through its first target without the guard. Each fails until
/// the decoder is fixed; then remove the finding from <see cref="KnownFindings.All"/> and move its input into the corpus.
/// </summary>
public sealed class FuzzFindingTests
{
    public static TheoryData<string> Findings => [.. KnownFindings.All.Select(f => f.Id)];

    public static string FindingsRoot() => Path.Combine(Path.GetDirectoryName(FuzzCorpus.Root())!, "findings");

    [Theory]
    [MemberData(nameof(Findings))]
    public void TheDecoderKeepsItsContractOnAFoundInput(string id)
    {
        var finding = KnownFindings.All.Single(f => f.Id == id);
        var target = FuzzTargets.Get(finding.Targets[0]);
        byte[] input = File.ReadAllBytes(Path.Combine(FindingsRoot(), finding.Id));
        var violation = Record.Exception(() => FuzzExecutor.Execute(target, input, guard: false));
        Assert.True(violation == null, $"{id} ({finding.Summary}) still fails: {violation?.Message}\n{violation?.InnerException}");
    }
}
