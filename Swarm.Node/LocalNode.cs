using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Exchange;
using Swarm.Core.Identity;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>
/// A node as one process runs it: identity and store from the data directory, the exchange engine on a TCP port, and
/// the DHT on the same port number over UDP. Content it holds is announced in the DHT as soon as it has verified pieces.
/// </summary>
public sealed class LocalNode : IAsyncDisposable
{
    public const string RoutingTableFile = "routing.bin";
    private readonly ConcurrentDictionary<ContentId, bool> _announced = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly ILogger _logger;
    private readonly DhtDiscovery? _discovery;

    private LocalNode(string dataDirectory, NodeKey key, ContentStore store, SwarmEngine engine, DhtNode? dht, ILogger logger,
        BootstrapList bootstrap, int failedJoins)
    {
        Bootstrap = bootstrap;
        _discovery = dht == null ? null : new DhtDiscovery(dht, key.NodeId, bootstrap, failedJoins);
        DataDirectory = dataDirectory;
        Key = key;
        Store = store;
        Engine = engine;
        Uplink = new UplinkGuard(engine);
        Dht = dht;
        _logger = logger;
        Engine.PieceVerified += OnPieceVerified;
        Engine.PieceRotten += OnPieceRotten;
        Engine.ContentSealed += OnContentSealed;
    }

    public string DataDirectory { get; }
    /// <summary>The --bootstrap addresses this node was started with.</summary>
    public BootstrapList Bootstrap { get; }
    public NodeKey Key { get; }
    public ContentStore Store { get; }
    public SwarmEngine Engine { get; }

    /// <summary>Keeps this node's uploads from starving its ingests from origins (one for all of them).</summary>
    public UplinkGuard Uplink { get; }
    /// <summary>The DHT, when the node listens (a node that only dials out has none).</summary>
    public DhtNode? Dht { get; }
    public IPEndPoint? EndPoint => Engine.ListenEndPoint;

    /// <summary>
    /// Opens the data directory and, when <paramref name="listen"/> is given, listens on TCP and UDP with the same port
    /// (port 0 picks one free for both), loads the saved routing table and joins the DHT through it and
    /// <paramref name="bootstrap"/>.
    /// </summary>
    public static async Task<LocalNode> StartAsync(string dataDirectory, EngineOptions options, ILogger logger, IPEndPoint? listen,
        BootstrapList bootstrap, CancellationToken cancellationToken, DhtOptions? dhtOptions = null)
    {
        Swarm.Node.DataDirectory.Create(dataDirectory); // 0700: it holds the key, and a node's task list holds credentials
        var key = NodeKey.LoadOrCreate(dataDirectory);
        var store = new ContentStore(dataDirectory, logger);
        SwarmEngine? engine = null;
        DhtNode? dht = null;
        int attempts = 0; // joins tried here that found nobody, counted in the message if the DHT stays out of reach
        try
        {
            if (listen != null)
            {
                (engine, dht) = BindBoth(key, store, options, dhtOptions ?? new DhtOptions(), logger, listen);
                dht.LoadRoutingTable(Path.Combine(dataDirectory, RoutingTableFile));
                int size = await dht.BootstrapAsync(bootstrap.Resolve(), cancellationToken).ConfigureAwait(false);
                attempts++;
                if (bootstrap.Unresolved.Count > 0) logger.LogWarning("bootstrap name {Names} does not resolve yet; the node starts without it and looks it up again at its next join", string.Join(", ", bootstrap.Unresolved));
                // Many nodes starting at once on a busy host can miss the first answers: try again briefly.
                for (int retry = 0; size == 0 && bootstrap.Count > 0 && !dht.LastBootstrapRefused && retry < 1; retry++)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(500 * (retry + 1)), cancellationToken).ConfigureAwait(false);
                    size = await dht.BootstrapAsync(bootstrap.Resolve(), cancellationToken).ConfigureAwait(false);
                    attempts++;
                }
                if (size > 0) attempts = 0;
                if (size == 0 && bootstrap.Count > 0)
                    logger.LogWarning("no DHT node answered at {Bootstrap} yet; trying again in the background (a get keeps trying until its --stall-timeout)", bootstrap);
            }
            else
            {
                engine = new SwarmEngine(key, store, options, logger);
            }
            return new LocalNode(dataDirectory, key, store, engine, dht, logger, bootstrap, attempts);
        }
        catch
        {
            if (dht != null) await dht.DisposeAsync().ConfigureAwait(false);
            if (engine != null) await engine.DisposeAsync().ConfigureAwait(false);
            key.Dispose();
            throw;
        }
    }

    /// <summary>TCP exchange and UDP DHT on the same port number; with port 0, tries free ports until both bind.</summary>
    private static (SwarmEngine, DhtNode) BindBoth(NodeKey key, ContentStore store, EngineOptions options, DhtOptions dhtOptions, ILogger logger, IPEndPoint listen)
    {
        for (int attempt = 0; ; attempt++)
        {
            var engine = new SwarmEngine(key, store, options, logger);
            engine.Listen(listen);
            var dht = new DhtNode(key, dhtOptions, logger);
            try
            {
                dht.Start(new IPEndPoint(listen.Address, engine.ListenEndPoint!.Port));
                return (engine, dht);
            }
            catch (SocketException e)
            {
                dht.DisposeAsync().AsTask().GetAwaiter().GetResult();
                engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
                if (listen.Port != 0 || attempt >= 20)
                    throw new Swarm.Core.Exchange.ListenException($"cannot listen for the DHT on UDP {listen.Address}:{engine.ListenEndPoint?.Port}: {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// Makes sure the node is in the DHT before a decision that depends on seeing other nodes (the cold-start lease):
    /// with an empty routing table and bootstrap addresses, tries to join again a few times (not when nothing listened at
    /// any of them: that node is alone). Returns the table size.
    /// </summary>
    public async Task<int> EnsureJoinedAsync(CancellationToken cancellationToken)
    {
        if (Dht == null) return 0;
        int size = Dht.GetStats().RoutingTableSize;
        for (int attempt = 0; size == 0 && Bootstrap.Count > 0 && !Dht.LastBootstrapRefused && attempt < 3; attempt++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(300 * (attempt + 1)), cancellationToken).ConfigureAwait(false);
            size = await Dht.BootstrapAsync(Bootstrap.Resolve(), cancellationToken).ConfigureAwait(false);
        }
        return size;
    }

    /// <summary>Whether the DHT can be asked at all: it knows nodes, or has addresses to join through (which may answer later).</summary>
    public bool CanDiscover => _discovery?.CanDiscover ?? false;

    /// <summary>Peers for a content from the DHT (not counting this node); see <see cref="DhtDiscovery"/>.</summary>
    public PeerDiscovery? Discovery => _discovery == null ? null : _discovery.FindAsync;

    /// <summary>Serves complete content and announces it.</summary>
    public async Task ServeAsync(StoredContent content, CancellationToken cancellationToken)
    {
        Engine.Serve(content);
        if (Dht == null || EndPoint == null) return;
        _announced[content.Id] = true;
        int stored = await Dht.AnnounceAsync(content.Id.Value, EndPoint.Port, Holdings(content), cancellationToken).ConfigureAwait(false);
        if (stored == 0) _logger.LogWarning("announced {Id}, but no DHT node stored the record yet (no --bootstrap, or none reachable); it is announced again as soon as a node joins through this one, and every 10 minutes", content.Id);
    }

    private static ProviderHoldings Holdings(StoredContent content) =>
        content.IsComplete ? ProviderHoldings.Complete(content.Layout.PieceCount) : ProviderHoldings.FromBitfield(content.Verified);

    /// <summary>Announces partial holdings as soon as the first piece is verified, then keeps them up to date.</summary>
    private void OnPieceVerified(StoredContent content, int piece)
    {
        if (Dht == null || EndPoint == null) return;
        if (_announced.TryAdd(content.Id, true))
        {
            _ = AnnounceInBackgroundAsync(content);
            return;
        }
        Dht.UpdateHoldings(content.Id.Value, Holdings(content));
    }

    /// <summary>A stored piece failed its hash check and is no longer served: the DHT record says so at its next refresh.</summary>
    private void OnPieceRotten(StoredContent content, int piece)
    {
        if (Dht == null || EndPoint == null) return;
        Dht.UpdateHoldings(content.Id.Value, Holdings(content));
    }

    /// <summary>
    /// A snapshot of the pieces this node holds of <paramref name="id"/> now (null when it holds no entry), taken before a
    /// download so that the export afterwards re-hashes only what was already stored (<see cref="StoredContent.VerifiedSince"/>).
    /// </summary>
    public Bitfield? SnapshotVerified(ContentId id)
    {
        if (Engine.Find(id)?.Content is { } served) return served.Verified.Clone();
        using var stored = Store.TryOpen(id);
        return stored?.Verified.Clone();
    }

    /// <summary>
    /// Writes a downloaded content to <paramref name="outputPath"/> after re-hashing its stored pieces, except those in
    /// <paramref name="verifiedInMemory"/> (verified by this very download; null: check them all). Pieces that fail their
    /// hash check in the store are dropped and fetched again from <paramref name="peers"/> and the DHT before the export is
    /// tried again, so a wrong byte never reaches the output. Returns the exported content.
    /// </summary>
    public Task<StoredContent> ExportCheckedAsync(StoredContent content, string outputPath, Bitfield? verifiedInMemory, IReadOnlyList<IPEndPoint> peers,
        IProgress<TransferProgress>? progress, CancellationToken cancellationToken) =>
        ExportCheckedAsync(content, outputPath, (c, inMemory) => c.Export(outputPath, inMemory), verifiedInMemory, peers, progress, cancellationToken);

    /// <summary>
    /// As <see cref="ExportCheckedAsync(StoredContent, string, Bitfield?, IReadOnlyList{IPEndPoint}, IProgress{TransferProgress}?, CancellationToken)"/>,
    /// with <paramref name="export"/> doing the writing (a file a client handed over: <see cref="HandedOutput.Write"/>);
    /// <paramref name="outputPath"/> names the output in messages.
    /// </summary>
    public async Task<StoredContent> ExportCheckedAsync(StoredContent content, string outputPath, Action<StoredContent, Bitfield?> export, Bitfield? verifiedInMemory,
        IReadOnlyList<IPEndPoint> peers, IProgress<TransferProgress>? progress, CancellationToken cancellationToken)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                export(content, verifiedInMemory);
                return content;
            }
            catch (PieceRottenException rot) when (attempt < 3)
            {
                var id = content.Id;
                var before = content.Verified.Clone();
                try
                {
                    content = await Engine.DownloadAsync(id, peers, progress, cancellationToken, Discovery).ConfigureAwait(false);
                }
                catch (PeerUnavailableException e)
                {
                    string which = rot.Pieces.Count == 1 ? $"piece {rot.Pieces[0]}" : $"pieces {string.Join(", ", rot.Pieces.Take(10))}";
                    throw new PeerUnavailableException(
                        $"{which} of {id} failed {(rot.Pieces.Count == 1 ? "its" : "their")} hash check in the store and no peer could serve {(rot.Pieces.Count == 1 ? "it" : "them")} again; " +
                        $"nothing was written to {outputPath}. Run the get again with --peer IP:PORT or --bootstrap IP:PORT so the pieces can be fetched ({e.Message})", e);
                }
                // Every other piece passed the check just now, and the refetched ones were verified in memory: nothing to re-hash.
                var trusted = content.VerifiedSince(before);
                for (int i = 0; i < before.Length; i++) if (before[i]) trusted.Set(i);
                verifiedInMemory = trusted;
            }
        }
    }

    /// <summary>A live content downloaded from an ingest was sealed: serve and announce the sealed entry too.</summary>
    private void OnContentSealed(StoredContent live, StoredContent sealedContent)
    {
        Engine.Serve(sealedContent);
        if (Dht == null || EndPoint == null || !_announced.TryAdd(sealedContent.Id, true)) return;
        _ = AnnounceInBackgroundAsync(sealedContent);
    }

    private async Task AnnounceInBackgroundAsync(StoredContent content)
    {
        try
        {
            await Dht!.AnnounceAsync(content.Id.Value, EndPoint!.Port, Holdings(content), _stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) { }
        catch (Exception e)
        {
            _logger.LogWarning("announcing {Id} failed: {Error}", content.Id, e.Message);
        }
    }

    /// <summary>
    /// Removes a content from this node: stops serving it, withdraws its DHT announcement and deletes it from the store.
    /// False when the store did not hold it.
    /// </summary>
    public async Task<bool> RemoveAsync(ContentId id)
    {
        await Engine.RemoveAsync(id).ConfigureAwait(false);
        _announced.TryRemove(id, out _);
        Dht?.Withdraw(id.Value);
        return Store.Delete(id);
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        Engine.PieceVerified -= OnPieceVerified;
        Engine.PieceRotten -= OnPieceRotten;
        Engine.ContentSealed -= OnContentSealed;
        Uplink.Dispose();
        if (Dht != null)
        {
            try
            {
                Dht.SaveRoutingTable(Path.Combine(DataDirectory, RoutingTableFile));
            }
            catch (IOException e)
            {
                _logger.LogWarning("could not save the routing table: {Error}", e.Message);
            }
            await Dht.DisposeAsync().ConfigureAwait(false);
        }
        await Engine.DisposeAsync().ConfigureAwait(false);
        Key.Dispose();
        _stop.Dispose();
    }
}
