using Swarm.Core.Sources;
using Swarm.Core.Identity;
using Swarm.Core.Storage;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Storage;

public sealed class CompletionRaceTests
{
    /// <summary>
    /// The download engine exports as soon as another thread sees <see cref="StoredContent.IsComplete"/>: whatever
    /// bookkeeping completion needs must be done before completion becomes visible. Export must never call freshly
    /// verified content "modified". A race, so it is tried many times (bounded to a few seconds).
    /// </summary>
    [Fact]
    public async Task Export_right_after_the_last_piece_is_committed_succeeds()
    {
        var ct = TestContext.Current.CancellationToken;
        using var dir = new TempDirectory();
        using var key = NodeKey.Generate();
        string source = dir.WriteRandomFile("source.bin", 256 * 1024 + 1000, seed: 3);
        byte[] original = File.ReadAllBytes(source);
        var origin = new ContentStore(dir.Combine("origin"));
        Swarm.Core.Content.Manifest manifest;
        byte[] signature;
        using (var seeded = await Ingest.FileAsync(origin, source, key, null, ct))
        {
            manifest = seeded.Manifest;
            signature = seeded.Signature;
        }
        var layout = manifest.Layout;
        Assert.Equal(2, layout.PieceCount);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int round = 0; round < 300 && clock.Elapsed < TimeSpan.FromSeconds(3); round++)
        {
            var store = new ContentStore(dir.Combine("store" + round));
            using var content = store.OpenOrCreate(manifest, signature);
            Assert.True(content.TryCommitPiece(0, original.AsSpan(0, layout.PieceLength(0))));
            string output = dir.Combine("out" + round, "file.bin");
            using var started = new ManualResetEventSlim();
            var exporter = Task.Factory.StartNew(() =>
            {
                started.Set();
                while (!content.IsComplete) Thread.SpinWait(10);
                content.Export(output);
            }, ct, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            started.Wait(ct);
            Assert.True(content.TryCommitPiece(1, original.AsSpan((int)layout.PieceOffset(1), layout.PieceLength(1))));
            await exporter.WaitAsync(TimeSpan.FromSeconds(5), ct); // throws what Export threw
            Assert.Equal(original, File.ReadAllBytes(output));
        }
    }
}
