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
        Security = new TransportSecurity(key, Options.SwarmKey, Options.Encrypt);
        Refusals = new Refusals(Logger);
        _handshakes = new HandshakePool(Options.MaxPendingHandshakes, Options.MaxPendingPerAddress, Options.LoopbackAsHosts);
        _tick = new Timer(_ => Tick(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    public NodeKey Key { get; }
    public ContentStore Store { get; }
    public EngineOptions Options { get; }
    public ILogger Logger { get; }
    public BanList Bans { get; } = new();
    /// <summary>Swarm key and encryption of this node's peer connections.</summary>
    public TransportSecurity Security { get; }
    /// <summary>Connections and sessions turned away, by reason; logged as a summary every few seconds.</summary>
    public Refusals Refusals { get; }
    private readonly HandshakePool _handshakes;
    private long _largeFrameBytes;
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
            var entry = _handshakes.TryEnter(client);
            if (entry == null)
            {
                // The handshake pool is full of connections that are all making progress: refuse at once (the peer tries
                // others) rather than queueing.
                Refusals.Record(RemoteAddress(client), RefusalReason.HandshakePoolFull, "too many connections in their handshake");
                client.Dispose();
                continue;
            }
            Track(HandleInboundAsync(client, entry));
        }
    }

    private static IPAddress RemoteAddress(Socket socket)
    {
        try { return HandshakePool.Normalize(((IPEndPoint)socket.RemoteEndPoint!).Address); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { return IPAddress.None; }
    }

    private int _connections;

    /// <summary>Admitted peer sessions now (inbound and outbound, all content); connections still in their handshake are not counted.</summary>
    public int Connections => Volatile.Read(ref _connections);
    /// <summary>Inbound connections still in admission or handshake.</summary>
    public int PendingHandshakes => _handshakes.Count;
    /// <summary>Connections and sessions refused, all reasons, since start.</summary>
    public long RefusedConnections => Refusals.Total;

    private async Task HandleInboundAsync(Socket client, HandshakePool.Entry entry)
    {
        var source = RemoteAddress(client);
        FrameConnection? connection = null;
        PeerSession? session = null;
        try
        {
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, entry.Evicted.Token))
            {
                timeout.CancelAfter(Options.HandshakeTimeout);
                try
                {
                    connection = await AdmitAsync(client, entry, timeout.Token).ConfigureAwait(false);
                    var (peer, content) = await Handshake.AcceptAsync(connection, Key, id => _swarms.ContainsKey(id), ListenEndPoint?.Port ?? 0, timeout.Token).ConfigureAwait(false);
                    if (Bans.IsBanned(peer.NodeId))
                    {
                        Refusals.Record(source, RefusalReason.Banned);
                        return;
                    }
                    if (!_swarms.TryGetValue(content, out var swarm)) throw new WireProtocolException($"{content} is no longer served");
                    session = new PeerSession(swarm, connection, peer, outbound: false);
                }
                catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
                {
                    Refusals.Record(source, entry.Evicted.IsCancellationRequested ? RefusalReason.HandshakeEvicted : RefusalReason.Timeout,
                        entry.Evicted.IsCancellationRequested ? null : $"{source} did not finish its handshake within {Options.HandshakeTimeout.TotalSeconds:0.#} s");
                    return;
                }
                catch (AdmissionException e)
                {
                    Refusals.Record(source, Refusals.From(e.Failure), e.Message, log: e.Failure != AdmissionFailure.Closed);
                    return;
                }
                catch (WireProtocolException e)
                {
                    Refusals.Record(source, RefusalReason.Handshake, e.Message, log: e is not PeerClosedException);
                    return;
                }
                finally
                {
                    _handshakes.Leave(entry);
                }
            }
            if (!TryAdmitSession())
            {
                Refusals.Record(source, RefusalReason.PeerLimit, $"this node's peer limit ({Options.MaxConnections}) is reached");
                return;
            }
            try
            {
                connection = null; // the session owns it now
                await session.RunAsync(_stop.Token).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _connections);
            }
        }
        catch (Exception e) when (e is WireProtocolException or IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            Logger.LogDebug("inbound connection from {Remote} dropped: {Error}", source, e.Message);
        }
        finally
        {
            if (connection != null) await connection.DisposeAsync().ConfigureAwait(false);
            else if (session == null) client.Dispose();
        }
    }

    /// <summary>Admission of an accepted socket: the preamble within its own short deadline, then the encrypted channel (bounded by the caller's).</summary>
    private async Task<FrameConnection> AdmitAsync(Socket client, HandshakePool.Entry entry, CancellationToken cancellationToken)
    {
        using var preamble = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        preamble.CancelAfter(Options.PreambleTimeout);
        // The preamble's deadline applies until it is in; after that only the handshake's.
        return await FrameConnection.AcceptAsync(client, Security, preamble.Token, onPreamble: () =>
        {
            entry.Spoke = true;
            preamble.CancelAfter(Timeout.InfiniteTimeSpan);
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes a slot under <see cref="EngineOptions.MaxConnections"/> for a new session; at the limit, a session idle both
    /// ways for <see cref="EngineOptions.IdleEviction"/> gives its slot up. False when none can.
    /// </summary>
    private bool TryAdmitSession()
    {
        if (Interlocked.Increment(ref _connections) <= Options.MaxConnections) return true;
        if (PeerSession.GiveUpIdlest(_swarms.Values.SelectMany(s => s.Sessions), Options.IdleEviction)) return true; // over by one until it is gone
        Interlocked.Decrement(ref _connections);
        return false;
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
                    // No session at all, but peers were tried: what they said is the news (another swarm's key, refused, down).
                    if (swarm.PeerCount == 0 && !errors.IsEmpty)
                        throw new PeerUnavailableException(
                            $"no peer could serve {id} ({string.Join("; ", errors.Select(e => $"{e.Key}: {e.Value}"))}{(discoveryError != null ? $"; the DHT: {discoveryError}" : "")}). " +
                            $"Gave up after {Options.StallTimeout.TotalSeconds:0.#} s without progress (the stall timeout)");
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
            bool counted = false;
            try
            {
                using var hs = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                hs.CancelAfter(Options.ConnectTimeout + Options.HandshakeTimeout); // the connect has its own bound inside
                connection = await FrameConnection.ConnectAsync(endPoint, Options.ConnectTimeout, hs.Token, Security).ConfigureAwait(false);
                var peer = await Handshake.InitiateAsync(connection, Key, swarm.Id, ListenEndPoint?.Port ?? 0, hs.Token).ConfigureAwait(false);
                if (Bans.IsBanned(peer.NodeId)) throw new WireProtocolException("peer is banned");
                Interlocked.Increment(ref _connections);
                counted = true;
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
                // A peer of another swarm (key, encryption) will not change its mind: do not keep knocking.
                if (e is AdmissionException { Failure: AdmissionFailure.SwarmKey or AdmissionFailure.Encryption }) return;
            }
            finally
            {
                if (counted) Interlocked.Decrement(ref _connections);
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

    /// <summary>Memory for one large frame while it arrives (see <see cref="EngineOptions.MaxLargeFrameBytes"/>); false when the node's share is used up.</summary>
    internal bool TryReserveLargeFrame(int bytes)
    {
        if (Interlocked.Add(ref _largeFrameBytes, bytes) <= Options.MaxLargeFrameBytes) return true;
        Interlocked.Add(ref _largeFrameBytes, -bytes);
        return false;
    }

    internal void ReleaseLargeFrame(int bytes) => Interlocked.Add(ref _largeFrameBytes, -bytes);

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
        Refusals.Flush(force: false);
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
        Refusals.Flush(force: true);
        Security.Dispose();
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
