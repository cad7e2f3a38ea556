using Swarm.Core.Sources;
using Swarm.Core.Identity;
using Swarm.Core.Storage;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Storage;

public sealed class ExportTests
{
    /// <summary>
    /// Running the same <c>swarm get -o</c> twice: the output already is a hard link to the data file, and rename() between
    /// two links of one inode does nothing, so the temporary link must be removed explicitly.
    /// </summary>
    [Fact]
    public async Task Exporting_twice_to_the_same_path_leaves_no_temporary_file()
    {
        using var dir = new TempDirectory();
        using var key = NodeKey.Generate();
        string source = dir.WriteRandomFile("source.bin", 700_000, seed: 5);
        var store = new ContentStore(dir.Combine("store"));
        using var content = await Ingest.FileAsync(store, source, key, null, TestContext.Current.CancellationToken);
        string outDir = dir.Combine("out");
        string output = Path.Combine(outDir, "file.bin");
        content.Export(output);
        content.Export(output);
        content.Export(output);
        Assert.Equal([output], Directory.GetFiles(outDir));
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(output));
    }
}
