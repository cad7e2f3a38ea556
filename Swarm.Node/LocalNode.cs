using System.Net;
using Microsoft.Extensions.Logging;
using Swarm.Core.Exchange;
using Swarm.Core.Identity;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>A node as one process runs it: identity and store from the data directory, and the exchange engine.</summary>
public sealed class LocalNode : IAsyncDisposable
{
    private LocalNode(string dataDirectory, NodeKey key, ContentStore store, SwarmEngine engine)
    {
        DataDirectory = dataDirectory;
        Key = key;
        Store = store;
        Engine = engine;
    }

    public string DataDirectory { get; }
    public NodeKey Key { get; }
    public ContentStore Store { get; }
    public SwarmEngine Engine { get; }

    public static LocalNode Open(string dataDirectory, EngineOptions options, ILogger logger, IPEndPoint? listen)
    {
        Directory.CreateDirectory(dataDirectory);
        var key = NodeKey.LoadOrCreate(dataDirectory);
        var store = new ContentStore(dataDirectory);
        var engine = new SwarmEngine(key, store, options, logger);
        try
        {
            if (listen != null) engine.Listen(listen);
        }
        catch
        {
            engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
            key.Dispose();
            throw;
        }
        return new LocalNode(dataDirectory, key, store, engine);
    }

    public async ValueTask DisposeAsync()
    {
        await Engine.DisposeAsync().ConfigureAwait(false);
        Key.Dispose();
    }
}
