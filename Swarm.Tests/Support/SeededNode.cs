using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Storage;

namespace Swarm.Tests.Support;

/// <summary>A <see cref="TestNode"/> that seeds a pseudo-random file, and a check that it still serves it correctly.</summary>
public sealed class SeededNode : IAsyncDisposable
{
    private readonly TempDirectory _files;

    private SeededNode(TempDirectory files, TestNode node, string sourcePath, StoredContent content)
    {
        _files = files;
        Node = node;
        SourcePath = sourcePath;
        Content = content;
    }

    public TestNode Node { get; }
    public string SourcePath { get; }
    public StoredContent Content { get; }
    public ContentId Id => Content.Id;
    public System.Net.IPEndPoint EndPoint => Node.EndPoint;
    public byte[] Original => File.ReadAllBytes(SourcePath);

    public static async Task<SeededNode> StartAsync(long length = 2 * 1024 * 1024, int seed = 7, EngineOptions? options = null, bool labLoopback = true)
    {
        var files = new TempDirectory();
        string path = files.WriteRandomFile("source.bin", length, seed);
        var node = new TestNode(options, labLoopback: labLoopback);
        var content = await node.SeedAsync(path);
        return new SeededNode(files, node, path, content);
    }

    /// <summary>A fresh node downloads the content from this one; the bytes must equal the original file.</summary>
    public async Task AssertStillServesAsync()
    {
        var ct = TestContext.Current.CancellationToken;
        await using var leech = new TestNode(new EngineOptions { DialAttempts = 2, ConnectTimeout = TimeSpan.FromSeconds(2), StallTimeout = TimeSpan.FromSeconds(8) });
        var content = await leech.Engine.DownloadAsync(Id, [EndPoint], null, ct).WaitAsync(TimeSpan.FromSeconds(8), ct);
        Assert.True(content.IsComplete);
        string output = Path.Combine(_files.Path, "download-" + Guid.NewGuid().ToString("N")[..8]);
        content.Export(output);
        Assert.True(Original.AsSpan().SequenceEqual(File.ReadAllBytes(output)), "downloaded bytes differ from the seeded file");
    }

    public async ValueTask DisposeAsync()
    {
        await Node.DisposeAsync();
        _files.Dispose();
    }
}
