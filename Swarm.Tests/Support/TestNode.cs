using Swarm.Core.Sources;
using System.Net;
using Swarm.Core.Exchange;
using Swarm.Core.Identity;
using Swarm.Core.Storage;

namespace Swarm.Tests.Support;

/// <summary>An in-process node on 127.0.0.1 with its own data directory: identity, store and exchange engine.</summary>
public sealed class TestNode : IAsyncDisposable
{
    private readonly TempDirectory? _ownedDir;

    /// <param name="labLoopback">
    /// Exempt loopback peers from the per-address limits, as a swarm of many nodes on 127.0.0.1 needs (true unless a test
    /// of those limits says otherwise).
    /// </param>
    public TestNode(EngineOptions? options = null, string? dataDirectory = null, bool listen = true, bool labLoopback = true)
    {
        if (dataDirectory == null) _ownedDir = new TempDirectory();
        DataDirectory = dataDirectory ?? _ownedDir!.Path;
        Key = NodeKey.LoadOrCreate(DataDirectory);
        Store = new ContentStore(DataDirectory);
        Engine = new SwarmEngine(Key, Store, (options ?? new EngineOptions()) with { LoopbackAsHosts = labLoopback });
        if (listen) Engine.Listen(new IPEndPoint(IPAddress.Loopback, 0));
    }

    public string DataDirectory { get; }
    public NodeKey Key { get; }
    public ContentStore Store { get; }
    public SwarmEngine Engine { get; }
    public IPEndPoint EndPoint => Engine.ListenEndPoint ?? throw new InvalidOperationException("node does not listen");

    /// <summary>Ingests a file and serves it.</summary>
    public async Task<StoredContent> SeedAsync(string path)
    {
        var content = await Ingest.FileAsync(Store, path, Key, null, TestContext.Current.CancellationToken);
        Engine.Serve(content);
        return content;
    }

    public async ValueTask DisposeAsync()
    {
        await Engine.DisposeAsync();
        Key.Dispose();
        _ownedDir?.Dispose();
    }
}
