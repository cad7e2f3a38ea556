using System.Collections.Concurrent;
using System.Net;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Content;
using Swarm.Core.Exchange.Download;
using Swarm.Core.Identity;
using Swarm.Core.Storage;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>Finds more peers for a content (the DHT); asked repeatedly while a download could use more peers.</summary>
public delegate Task<IReadOnlyList<IPEndPoint>> PeerDiscovery(ContentId id, CancellationToken cancellationToken);

/// <summary>Progress of a download, for progress bars.</summary>
public readonly record struct TransferProgress(long TotalBytes, long VerifiedBytes, long BytesFromPeers, int Peers);

/// <summary>
/// The exchange side of a node: runs one <see cref="ContentSwarm"/> per content, accepts peers (<see cref="PeerListener"/>)
/// and dials them for downloads (<see cref="PeerDialer"/>).
/// Serves every verified piece it holds to anyone who asks, and downloads what it is told to.
/// </summary>
public sealed class SwarmEngine : IAsyncDisposable
{
    private readonly ConcurrentDictionary<ContentId, ContentSwarm> _swarms = new();
    private readonly Lock _opening = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _background = [];
    private readonly Timer _tick;
    private PeerListener? _listener;

    public SwarmEngine(NodeKey key, ContentStore store, EngineOptions? options = null, ILogger? logger = null)
    {
        Key = key;
        Store = store;
        Options = options ?? new EngineOptions();
        PieceBuffers = new PieceBufferBudget(Options.MaxPieceBufferBytes);
        Logger = logger ?? NullLogger.Instance;
        SetRates(Options.UploadRate, Options.DownloadRate);
        Security = new TransportSecurity(key, Options.SwarmKey, Options.Encrypt);
        Refusals = new Refusals(Logger);
        _tick = new Timer(_ => Tick(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    public NodeKey Key { get; }
    public ContentStore Store { get; }
    public EngineOptions Options { get; }
    public ILogger Logger { get; }
    public BanList Bans { get; } = new();
    /// <summary>Memory for pieces being assembled and verified, all downloads together.</summary>
    internal PieceBufferBudget PieceBuffers { get; }
    /// <summary>Swarm key and encryption of this node's peer connections.</summary>
    public TransportSecurity Security { get; }
    /// <summary>Connections and sessions turned away, by reason; logged as a summary every few seconds.</summary>
    public Refusals Refusals { get; }
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
        _listener = PeerListener.Start(this, endPoint, _stop.Token);
        ListenEndPoint = _listener.EndPoint;
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

    private int _connections;

    /// <summary>Admitted peer sessions now (inbound and outbound, all content); connections still in their handshake are not counted.</summary>
    public int Connections => Volatile.Read(ref _connections);
    /// <summary>Inbound connections still in admission or handshake.</summary>
    public int PendingHandshakes => _listener?.PendingHandshakes ?? 0;

    /// <summary>A dialled session starts (counted against <see cref="EngineOptions.MaxConnections"/>).</summary>
    internal void EnterSession() => Interlocked.Increment(ref _connections);
    internal void LeaveSession() => Interlocked.Decrement(ref _connections);
    /// <summary>Connections and sessions refused, all reasons, since start.</summary>
    public long RefusedConnections => Refusals.Total;

    /// <summary>
    /// Takes a slot under <see cref="EngineOptions.MaxConnections"/> for a new session; at the limit, a session idle both
    /// ways for <see cref="EngineOptions.IdleEviction"/> gives its slot up. False when none can.
    /// </summary>
    internal bool TryAdmitSession()
    {
        if (Interlocked.Increment(ref _connections) <= Options.MaxConnections) return true;
        if (PeerLimits.GiveUpIdlest(_swarms.Values.SelectMany(s => s.Sessions), Options.IdleEviction)) return true; // over by one until it is gone
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
        var dialer = new PeerDialer(this, swarm, run.Token);
        var errors = dialer.Errors;
        using var phases = new DownloadPhases();
        foreach (var p in peers) dialer.Dial(p);

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
                        phases.LookupEnded(found.Count);
                        foreach (var p in found) dialer.Dial(p);
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
                    {
                        phases.LookupStarted();
                        discovering = discover(id, run.Token);
                    }
                }
                while (swarm.TryTakeLearnedPeer(out var learned)) dialer.Dial(learned);
                var finished = await Task.WhenAny(swarm.Completion, Task.Delay(100, run.Token)).ConfigureAwait(false);
                if (finished != swarm.Completion) run.Token.ThrowIfCancellationRequested(); // stopped by the caller, not "no peers"
                var content = swarm.Content;
                progress?.Report(new TransferProgress(content?.Layout.Length ?? 0, content?.VerifiedBytes ?? 0, swarm.BytesFromPeers, swarm.PeerCount));
                phases.Observe(swarm.PeerCount);
                if (finished == swarm.Completion)
                {
                    var done = await swarm.Completion.ConfigureAwait(false);
                    phases.Completed(done.Layout.Length, swarm.BytesFromPeers, swarm.PeerCount);
                    // A live content's seal follows the ingester's last piece: keep the connections open a moment for it,
                    // so this node can also hold (and serve) the sealed content.
                    if (done.Manifest.IsLive) await Task.WhenAny(swarm.SealedTask, Task.Delay(Options.SealWait, run.Token)).ConfigureAwait(false);
                    return done;
                }
                bool discoveryExhausted = discover == null || (discovering == null && emptyDiscoveries >= 3);
                if (swarm.PeerCount == 0 && dialer.AllEnded && discoveryExhausted)
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
        catch (Exception e)
        {
            phases.Failed(e is OperationCanceledException ? "cancelled" : e.GetType().Name);
            throw;
        }
        finally
        {
            await run.CancelAsync().ConfigureAwait(false);
            await dialer.WaitAsync().ConfigureAwait(false);
            if (discovering != null) try { await discovering.ConfigureAwait(false); } catch (Exception) { }
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

    private void Tick()
    {
        Refusals.Flush(force: false);
        foreach (var swarm in _swarms.Values)
        {
            try { swarm.Tick(); }
            catch (Exception e) { Logger.LogError(e, "housekeeping of {Id} failed", swarm.Id); }
        }
    }

    internal void Track(Task task)
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
