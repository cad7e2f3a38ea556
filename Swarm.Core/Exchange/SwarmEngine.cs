using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Content;
using Swarm.Core.Identity;
using Swarm.Core.Storage;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>Finds more peers for a content (the DHT); asked repeatedly while a download could use more peers.</summary>
public delegate Task<IReadOnlyList<IPEndPoint>> PeerDiscovery(ContentId id, CancellationToken cancellationToken);

/// <summary>Progress of a download, for progress bars.</summary>
public readonly record struct TransferProgress(long TotalBytes, long VerifiedBytes, long BytesFromPeers, int Peers);

/// <summary>
/// The exchange side of a node: listens for peers, dials peers, and runs one <see cref="ContentSwarm"/> per content.
/// Serves every verified piece it holds to anyone who asks, and downloads what it is told to.
/// </summary>
public sealed class SwarmEngine : IAsyncDisposable
{
    private readonly ConcurrentDictionary<ContentId, ContentSwarm> _swarms = new();
    private readonly Lock _opening = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _background = [];
    private readonly Timer _tick;
    private Socket? _listener;
    private long _bufferBytes;

    public SwarmEngine(NodeKey key, ContentStore store, EngineOptions? options = null, ILogger? logger = null)
    {
        Key = key;
        Store = store;
        Options = options ?? new EngineOptions();
        Logger = logger ?? NullLogger.Instance;
        SetRates(Options.UploadRate, Options.DownloadRate);
        _tick = new Timer(_ => Tick(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    public NodeKey Key { get; }
    public ContentStore Store { get; }
    public EngineOptions Options { get; }
    public ILogger Logger { get; }
    public BanList Bans { get; } = new();
    public IPEndPoint? ListenEndPoint { get; private set; }
    internal RateLimiter? UploadLimiter { get; private set; }
    internal RateLimiter? DownloadLimiter { get; private set; }

    /// <summary>Upload limit now in force, bytes/s (0 = none); starts at <see cref="EngineOptions.UploadRate"/>.</summary>
    public long UploadRate { get; private set; }
    /// <summary>Download limit now in force, bytes/s (0 = none).</summary>
    public long DownloadRate { get; private set; }

    /// <summary>
    /// Changes the rate limits at run time. Waits already queued on the old limiters finish under the old rate (the old
    /// limiters are left to the garbage collector, not disposed under them).
    /// </summary>
    public void SetRates(long uploadBytesPerSecond, long downloadBytesPerSecond)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(uploadBytesPerSecond);
        ArgumentOutOfRangeException.ThrowIfNegative(downloadBytesPerSecond);
        UploadLimiter = CreateLimiter(uploadBytesPerSecond);
        DownloadLimiter = CreateLimiter(downloadBytesPerSecond);
        UploadRate = uploadBytesPerSecond;
        DownloadRate = downloadBytesPerSecond;
    }

    private long _totalFromPeers, _totalUploaded, _piecesVerified, _piecesFailed, _piecesRotten;

    /// <summary>Bytes received from peers in blocks, all content, since start.</summary>
    public long TotalBytesFromPeers => Interlocked.Read(ref _totalFromPeers);
    /// <summary>Bytes sent to peers in blocks, all content, since start.</summary>
    public long TotalBytesUploaded => Interlocked.Read(ref _totalUploaded);
    /// <summary>Pieces from peers that verified, all content, since start.</summary>
    public long PiecesVerified => Interlocked.Read(ref _piecesVerified);
    /// <summary>Pieces from peers that failed their hash check, all content, since start.</summary>
    public long PiecesFailed => Interlocked.Read(ref _piecesFailed);

    /// <summary>Stored pieces that failed their hash check when read (served, mirrored or exported), all content, since start.</summary>
    public long PiecesRotten => Interlocked.Read(ref _piecesRotten);

    /// <summary>Raised after a stored piece failed its hash check and was dropped (for updating holdings and repairing).</summary>
    public event Action<StoredContent, int>? PieceRotten;

    internal void OnPieceRotten(StoredContent content, int piece)
    {
        Interlocked.Increment(ref _piecesRotten);
        try
        {
            PieceRotten?.Invoke(content, piece);
        }
        catch (Exception e)
        {
            Logger.LogWarning("piece-rotten handler failed: {Error}", e.Message);
        }
    }

    internal void CountFromPeers(long bytes) => Interlocked.Add(ref _totalFromPeers, bytes);
    internal void CountUploaded(long bytes) => Interlocked.Add(ref _totalUploaded, bytes);
    internal void CountPieceFailed() => Interlocked.Increment(ref _piecesFailed);
    public IReadOnlyCollection<ContentSwarm> Swarms => [.. _swarms.Values];

    /// <summary>Raised after a downloaded piece is verified and stored (for announcing holdings).</summary>
    public event Action<StoredContent, int>? PieceVerified;

    /// <summary>Raised when a downloaded live content was sealed into its ordinary entry (live, sealed).</summary>
    public event Action<StoredContent, StoredContent>? ContentSealed;

    internal void OnSealed(StoredContent live, StoredContent sealedContent)
    {
        try
        {
            ContentSealed?.Invoke(live, sealedContent);
        }
        catch (Exception e)
        {
            Logger.LogWarning("content-sealed handler failed: {Error}", e.Message);
        }
    }

    internal void OnPieceVerified(StoredContent content, int piece)
    {
        Interlocked.Increment(ref _piecesVerified);
        try
        {
            PieceVerified?.Invoke(content, piece);
        }
        catch (Exception e)
        {
            Logger.LogWarning("piece-verified handler failed: {Error}", e.Message);
        }
    }

    /// <summary>A token bucket over bytes: refilled every 10 ms, bursts up to 50 ms of traffic (at least one largest block).</summary>
    private static TokenBucketRateLimiter? CreateLimiter(long bytesPerSecond)
    {
        if (bytesPerSecond <= 0) return null;
        var period = TimeSpan.FromMilliseconds(10);
        int perPeriod = (int)Math.Max(1, Math.Min(int.MaxValue, bytesPerSecond / 100));
        int burst = (int)Math.Clamp(bytesPerSecond / 20, WireLimits.MaxBlockLength, int.MaxValue);
        return new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = perPeriod,
            ReplenishmentPeriod = period,
            QueueLimit = int.MaxValue,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            AutoReplenishment = true,
        });
    }

    /// <summary>Starts accepting peers. Port 0 picks a free port; <see cref="ListenEndPoint"/> tells which.</summary>
    public void Listen(IPEndPoint endPoint)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endPoint.AddressFamily == AddressFamily.InterNetworkV6) socket.DualMode = true;
            socket.Bind(endPoint);
            socket.Listen(512);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new ListenException($"cannot listen on {endPoint}: {e.Message}", e);
        }
        _listener = socket;
        ListenEndPoint = (IPEndPoint)socket.LocalEndPoint!;
        Track(AcceptLoopAsync(socket));
    }

    /// <summary>Serves content the store holds (complete or partial).</summary>
    public ContentSwarm Serve(StoredContent content) => _swarms.GetOrAdd(content.Id, id => new ContentSwarm(this, id, content));

    public ContentSwarm? Find(ContentId id) => _swarms.TryGetValue(id, out var s) ? s : null;

    /// <summary>Stops serving a content: closes its connections and releases its store entry. False when not served.</summary>
    public async Task<bool> RemoveAsync(ContentId id)
    {
        if (!_swarms.TryRemove(id, out var swarm)) return false;
        await swarm.DisposeAsync().ConfigureAwait(false);
        return true;
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException e)
            {
                Logger.LogWarning("accept failed: {Error}", e.Message);
                continue;
            }
            if (Interlocked.CompareExchange(ref _connections, 0, 0) >= Options.MaxConnections)
            {
                // At the connection limit: refuse at once (the peer tries others) rather than queueing.
                Interlocked.Increment(ref _refusedConnections);
                client.Dispose();
                continue;
            }
            Track(HandleInboundAsync(client));
        }
    }

    private int _connections;
    private long _refusedConnections;

    /// <summary>Peer connections open now (inbound and outbound, all content).</summary>
    public int Connections => Volatile.Read(ref _connections);
    /// <summary>Inbound connections refused because <see cref="EngineOptions.MaxConnections"/> was reached.</summary>
    public long RefusedConnections => Interlocked.Read(ref _refusedConnections);

    private async Task HandleInboundAsync(Socket client)
    {
        Interlocked.Increment(ref _connections);
        try
        {
            await HandleInboundCoreAsync(client).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _connections);
        }
    }

    private async Task HandleInboundCoreAsync(Socket client)
    {
        var connection = new FrameConnection(client);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(Options.HandshakeTimeout);
            var (peer, content) = await Handshake.AcceptAsync(connection, Key, id => _swarms.ContainsKey(id), ListenEndPoint?.Port ?? 0, timeout.Token).ConfigureAwait(false);
            if (Bans.IsBanned(peer.NodeId)) throw new WireProtocolException("peer is banned");
            if (!_swarms.TryGetValue(content, out var swarm)) throw new WireProtocolException($"{content} is no longer served");
            var session = new PeerSession(swarm, connection, peer, outbound: false);
            await session.RunAsync(_stop.Token).ConfigureAwait(false);
            return;
        }
        catch (Exception e) when (e is WireProtocolException or IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            Logger.LogDebug("inbound connection from {Remote} dropped: {Error}", connection.RemoteEndPoint, e.Message);
        }
        await connection.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Downloads content into the store and returns it once every piece is verified. Peers come from
    /// <paramref name="peers"/> and, when given, from <paramref name="discover"/> (the DHT), asked again while the
    /// download has fewer peers than it could use. Content already complete in the store returns at once; a partial
    /// entry (after a crash) continues where it stopped. Fails with a message that names each peer's problem when no
    /// peer can serve, or when nothing is verified for the stall timeout.
    /// </summary>
    public async Task<StoredContent> DownloadAsync(ContentId id, IReadOnlyList<IPEndPoint> peers, IProgress<TransferProgress>? progress,
        CancellationToken cancellationToken, PeerDiscovery? discover = null)
    {
        ContentSwarm swarm;
        // Two downloads of one id at once join one swarm: the entry is opened (and its writer lock taken) once, under a
        // gate, so the second caller finds the first one's swarm instead of opening the entry again and failing on the
        // writer lock its own process holds.
        lock (_opening)
        {
            var existing = Find(id)?.Content ?? Store.TryOpen(id);
            if (existing is { IsComplete: true })
            {
                Serve(existing);
                return existing;
            }
            existing?.AcquireWriter();
            swarm = _swarms.GetOrAdd(id, i => new ContentSwarm(this, i, existing));
            if (swarm.Content != existing) existing?.Dispose();
            swarm.StartDownload();
        }

        using var run = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stop.Token);
        var errors = new ConcurrentDictionary<IPEndPoint, string>();
        var dialers = new Dictionary<IPEndPoint, Task>();
        void Dial(IPEndPoint endPoint)
        {
            if (dialers.TryGetValue(endPoint, out var running) && !running.IsCompleted) return;
            if (Bans.IsBanned(endPoint) || dialers.Count(d => !d.Value.IsCompleted) >= Options.MaxPeersPerContent) return;
            dialers[endPoint] = Task.Run(() => DialLoopAsync(swarm, endPoint, errors, run.Token));
        }
        foreach (var p in peers) Dial(p);

        Task<IReadOnlyList<IPEndPoint>>? discovering = null;
        long nextDiscovery = 0;
        int emptyDiscoveries = 0, unreachedDiscoveries = 0, discoveries = 0;
        string? discoveryError = null;
        try
        {
            while (true)
            {
                if (discover != null)
                {
                    long now = Environment.TickCount64;
                    if (discovering is { IsCompleted: true })
                    {
                        // A discovery that failed (the DHT out of reach: a busy or restarting bootstrap node) says nothing about
                        // who provides the content: it is retried with back-off until the stall timeout, not counted as empty.
                        bool reached = discovering.IsCompletedSuccessfully;
                        var found = reached ? discovering.Result : [];
                        discoveryError = discovering.IsFaulted ? discovering.Exception!.GetBaseException().Message : null;
                        discoveries++;
                        foreach (var p in found) Dial(p);
                        if (reached)
                        {
                            emptyDiscoveries = found.Count == 0 ? emptyDiscoveries + 1 : 0;
                            unreachedDiscoveries = 0;
                        }
                        else unreachedDiscoveries++;
                        // Ask often while under-connected: partial holders announce themselves as soon as they have a piece.
                        int peerCount = swarm.PeerCount;
                        nextDiscovery = now + (peerCount == 0
                                ? (reached ? 1000L * Math.Min(8, 1 << emptyDiscoveries) : 250L * Math.Min(8, 1 << Math.Min(unreachedDiscoveries, 3)))
                            : peerCount < 4 ? 500 : peerCount < Options.MaxPeersPerContent / 2 ? 2_000 : 30_000);
                        discovering = null;
                    }
                    if (discovering == null && now >= nextDiscovery && swarm.PeerCount < Options.MaxPeersPerContent)
                        discovering = discover(id, run.Token);
                }
                while (swarm.TryTakeLearnedPeer(out var learned)) Dial(learned);
                var finished = await Task.WhenAny(swarm.Completion, Task.Delay(100, run.Token)).ConfigureAwait(false);
                if (finished != swarm.Completion) run.Token.ThrowIfCancellationRequested(); // stopped by the caller, not "no peers"
                var content = swarm.Content;
                progress?.Report(new TransferProgress(content?.Layout.Length ?? 0, content?.VerifiedBytes ?? 0, swarm.BytesFromPeers, swarm.PeerCount));
                if (finished == swarm.Completion)
                {
                    var done = await swarm.Completion.ConfigureAwait(false);
                    // A live content's seal follows the ingester's last piece: keep the connections open a moment for it,
                    // so this node can also hold (and serve) the sealed content.
                    if (done.Manifest.IsLive) await Task.WhenAny(swarm.SealedTask, Task.Delay(Options.SealWait, run.Token)).ConfigureAwait(false);
                    return done;
                }
                bool discoveryExhausted = discover == null || (discovering == null && emptyDiscoveries >= 3);
                if (swarm.PeerCount == 0 && dialers.Values.All(d => d.IsCompleted) && discoveryExhausted)
                {
                    string detail = errors.IsEmpty
                        ? (discover == null ? "no peers were given" : "no providers found in the DHT" + (discoveryError != null ? $": {discoveryError}" : ""))
                        : string.Join("; ", errors.Select(e => $"{e.Key}: {e.Value}"));
                    throw new PeerUnavailableException($"no peer could serve {id} ({detail})");
                }
                if (Environment.TickCount64 - swarm.LastProgress > Options.StallTimeout.TotalMilliseconds)
                {
                    if (swarm.PeerCount == 0 && errors.IsEmpty && discoveryError != null)
                        throw new PeerUnavailableException(
                            $"no peer could serve {id}: {discoveryError}. Gave up after {Options.StallTimeout.TotalSeconds:0.#} s without progress (the stall timeout; {discoveries} discovery attempt(s))");
                    string state = swarm.Describe();
                    Logger.LogDebug("stalled download of {Id}: {State}", id, state);
                    if (swarm.PiecesNoPeerServes() is { Count: > 0 } unserved)
                        throw new PeerUnavailableException(
                            $"download of {id} stalled: {(unserved.Count == 1 ? $"piece {unserved[0]} is" : $"pieces {string.Join(", ", unserved)} are")} not available from any of the {swarm.PeerCount} connected peer(s) " +
                            "(a peer whose stored copy fails its hash check stops offering it)") { OtherPeersMayHelp = true };
                    throw new PeerUnavailableException($"download of {id} stalled: nothing verified for {Options.StallTimeout.TotalSeconds:0} s from {swarm.PeerCount} peer(s) [{state}]");
                }
            }
        }
        finally
        {
            await run.CancelAsync().ConfigureAwait(false);
            try { await Task.WhenAll(dialers.Values).ConfigureAwait(false); } catch (OperationCanceledException) { }
            if (discovering != null) try { await discovering.ConfigureAwait(false); } catch (Exception) { }
        }
    }

    private async Task DialLoopAsync(ContentSwarm swarm, IPEndPoint endPoint, ConcurrentDictionary<IPEndPoint, string> errors, CancellationToken cancellationToken)
    {
        int failures = 0;
        while (!cancellationToken.IsCancellationRequested && !swarm.Completion.IsCompleted)
        {
            if (Bans.IsBanned(endPoint))
            {
                errors[endPoint] = "banned for sending bad data";
                return;
            }
            if (Connections >= Options.MaxConnections || swarm.IsConnectedTo(endPoint))
            {
                // At the limit, or the peer already connected to us: a second connection would be dropped as a duplicate
                // (and could take the working one with it). Look again later.
                await Task.Delay(1000, cancellationToken).ConfigureAwait(false);
                continue;
            }
            FrameConnection? connection = null;
            Interlocked.Increment(ref _connections);
            try
            {
                connection = await FrameConnection.ConnectAsync(endPoint, Options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
                using var hs = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                hs.CancelAfter(Options.HandshakeTimeout);
                var peer = await Handshake.InitiateAsync(connection, Key, swarm.Id, ListenEndPoint?.Port ?? 0, hs.Token).ConfigureAwait(false);
                if (Bans.IsBanned(peer.NodeId)) throw new WireProtocolException("peer is banned");
                var session = new PeerSession(swarm, connection, peer, outbound: true);
                connection = null; // the session owns it now
                long before = session.BytesDownloaded;
                await session.RunAsync(cancellationToken).ConfigureAwait(false);
                errors[endPoint] = session.CloseReason ?? "disconnected";
                if (session.BytesDownloaded > before) failures = 0; // it was useful: reconnect freely
                else failures++;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is SocketException or IOException or TimeoutException or WireProtocolException or OperationCanceledException)
            {
                errors[endPoint] = e is OperationCanceledException ? "handshake timed out" : e.Message;
                failures++;
            }
            finally
            {
                Interlocked.Decrement(ref _connections);
                if (connection != null) await connection.DisposeAsync().ConfigureAwait(false);
            }
            if (failures >= Options.DialAttempts) return;
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500 * (1 << Math.Min(failures, 5))), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    internal bool TryReserveBuffer(int bytes)
    {
        if (Interlocked.Add(ref _bufferBytes, bytes) <= Options.MaxPieceBufferBytes) return true;
        Interlocked.Add(ref _bufferBytes, -bytes);
        return false;
    }

    internal void ForceReserveBuffer(int bytes) => Interlocked.Add(ref _bufferBytes, bytes);
    internal void ReleaseBuffer(int bytes) => Interlocked.Add(ref _bufferBytes, -bytes);

    private void Tick()
    {
        foreach (var swarm in _swarms.Values)
        {
            try { swarm.Tick(); }
            catch (Exception e) { Logger.LogError(e, "housekeeping of {Id} failed", swarm.Id); }
        }
    }

    private void Track(Task task)
    {
        lock (_background)
        {
            _background.RemoveAll(t => t.IsCompleted);
            _background.Add(task);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        await _tick.DisposeAsync().ConfigureAwait(false);
        _listener?.Dispose();
        foreach (var swarm in _swarms.Values) await swarm.DisposeAsync().ConfigureAwait(false);
        Task[] pending;
        lock (_background) pending = [.. _background];
        try { await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); } catch (Exception) { }
        UploadLimiter?.Dispose();
        DownloadLimiter?.Dispose();
        _stop.Dispose();
    }
}

/// <summary>No peer could serve the content (all unreachable, all failed, or the download stalled).</summary>
public sealed class PeerUnavailableException : Exception
{
    public PeerUnavailableException(string message) : base(message) { }
    public PeerUnavailableException() { }
    public PeerUnavailableException(string message, Exception inner) : base(message, inner) { }

    /// <summary>The peers at hand lack some pieces: another node that holds the content would help.</summary>
    public bool OtherPeersMayHelp { get; init; }
}
