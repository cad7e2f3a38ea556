using System.Net;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Storage;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>
/// One connected peer for one content: its availability and choke state, the requests we have out with it, and the
/// requests it has queued with us (served by an upload loop, one answer per request). Download decisions live in
/// <see cref="ContentSwarm"/>; the session turns frames into calls on it.
/// </summary>
public sealed class PeerSession
{
    public const int InitialDepth = 16;
    public const int MinDepth = 4;
    public const int MaxDepth = 128;
    /// <summary>Target time a request waits in the peer's queue: depth ≈ rate × this / block size.</summary>
    private static readonly double QueueSeconds = 0.5;

    private readonly ContentSwarm _swarm;
    private readonly Channel<Request> _uploads = Channel.CreateBounded<Request>(new BoundedChannelOptions(WireLimits.MaxQueuedRequests) { SingleReader = false, SingleWriter = true });
    private readonly HashSet<long> _cancelled = [];
    private bool _availabilityReceived;
    private long _windowBytes;

    internal PeerSession(ContentSwarm swarm, FrameConnection connection, PeerIdentity peer, bool outbound)
    {
        _lastBlock = Environment.TickCount64;
        _swarm = swarm;
        Connection = connection;
        Peer = peer;
        Outbound = outbound;
        Address = outbound ? connection.RemoteEndPoint : new IPEndPoint(connection.RemoteEndPoint.Address, peer.ListenPort);
    }

    public FrameConnection Connection { get; }
    public PeerIdentity Peer { get; }
    public bool Outbound { get; }
    /// <summary>Where the peer accepts connections (for bans and redials).</summary>
    public IPEndPoint Address { get; }
    public string? CloseReason { get; private set; }

    // All of the following are guarded by the swarm's lock.
    internal Bitfield? Has;
    internal bool IsSeed;
    internal byte[]? PendingBitfield;
    internal HashSet<int>? PendingHaves;
    /// <summary>Live content: signed piece hashes that came before the manifest did.</summary>
    internal List<SignedPieceHash>? PendingPieceHashes;
    internal bool PeerChoking = true;
    internal bool PeerInterested;
    internal bool AmChoking = true;
    internal bool AmInterested;
    /// <summary>Contributed to a piece that failed its hash along with other peers: gets only whole pieces of its own.</summary>
    internal bool OnParole;
    /// <summary>Gone from the swarm: never given requests again (a pump may still run from an older snapshot).</summary>
    internal bool Detached;
    internal readonly Dictionary<long, long> Outstanding = [];
    internal int Depth = InitialDepth;
    internal double DownloadRate;
    public long BytesDownloaded { get; internal set; }

    private long _lastBlock;
    private int _largeFrame;
    /// <summary>We asked this peer for the manifest and it has not come yet: the one state in which a Hashes frame is expected.</summary>
    internal volatile bool HashesRequested;
    /// <summary>When we last asked this peer for a block (blocks after that, up to the request timeout, are expected).</summary>
    internal long LastRequested;
    /// <summary>Closed to make room for a newcomer: no longer counted against the peer limits.</summary>
    internal volatile bool GivingUpSlot;

    /// <summary>
    /// Closes the session of <paramref name="sessions"/> idle longest (no block either way for at least
    /// <paramref name="idle"/>) to give its slot to a newcomer; false when none is that idle. One rule for the node's
    /// connection limit and a content's peer limits.
    /// </summary>
    internal static bool GiveUpIdlest(IEnumerable<PeerSession> sessions, TimeSpan idle)
    {
        long threshold = (long)idle.TotalMilliseconds;
        PeerSession? victim = null;
        foreach (var s in sessions)
            if (!s.GivingUpSlot && s.IdleFor >= threshold && (victim == null || s.IdleFor > victim.IdleFor)) victim = s;
        if (victim == null) return false;
        victim.GivingUpSlot = true;
        victim.Close($"gave its slot to a new peer after {victim.IdleFor / 1000.0:0.#} s without a block either way");
        return true;
    }

    /// <summary>Milliseconds since a block went either way (or since the session started).</summary>
    public long IdleFor => Environment.TickCount64 - Interlocked.Read(ref _lastBlock);
    public long BytesUploaded { get; private set; }

    internal static long BlockKey(int piece, int offset) => ((long)piece << 32) | (uint)offset;

    internal bool PeerHas(int piece) =>
        (IsSeed || (Has != null && Has[piece])) && !(Refused != null && Refused.TryGetValue(piece, out long until) && until > Environment.TickCount64);

    /// <summary>Pieces the peer declined to serve (not available from it right now), until when.</summary>
    internal Dictionary<int, long>? Refused;
    /// <summary>Pieces this peer answered "not available" although it offered them (its stored copy failed its hash check, say).</summary>
    internal HashSet<int>? NotHeld;

    /// <summary>Pieces a complete node has started sending to this peer (the rest of their blocks are never steered away).</summary>
    internal readonly HashSet<int> Serving = [];

    /// <summary>Pieces a complete node already sent this peer elsewhere for once.</summary>
    internal readonly HashSet<int> SteeredAway = [];

    internal void RecordBlock(int length)
    {
        Interlocked.Exchange(ref _lastBlock, Environment.TickCount64);
        _windowBytes += length;
        BytesDownloaded += length;
    }

    /// <summary>Once a second: download rate from the last window, pipeline depth from the rate.</summary>
    internal void Tick()
    {
        DownloadRate = DownloadRate * 0.5 + _windowBytes * 0.5;
        _windowBytes = 0;
        int depth = (int)Math.Ceiling(DownloadRate * QueueSeconds / PieceLayout.BlockSize);
        Depth = Math.Clamp(Math.Max(depth, Depth / 2), MinDepth, MaxDepth);
    }

    internal void Close(string reason)
    {
        CloseReason ??= reason;
        Connection.Close();
    }

    internal async Task RunAsync(CancellationToken cancellationToken)
    {
        Task uploads = Task.CompletedTask;
        try
        {
            await _swarm.AttachAsync(this, cancellationToken).ConfigureAwait(false);
            uploads = UploadLoopAsync(cancellationToken);
            await Connection.ReceiveAsync(OnFrameAsync, cancellationToken, Admit).ConfigureAwait(false);
            CloseReason ??= "peer closed the connection";
        }
        catch (DuplicateConnectionException e)
        {
            CloseReason ??= e.Message; // two connections to one peer: the agreed one stays, nothing is wrong
        }
        catch (PeerLimitException e)
        {
            CloseReason ??= e.Message; // counted and summarised by the engine's refusals
        }
        catch (WireProtocolException e)
        {
            CloseReason ??= "protocol violation: " + e.Message;
            // Summarised, not a line each: a peer (or many) breaking the protocol on purpose must not flood the log.
            _swarm.Engine.Refusals.Record(Connection.RemoteEndPoint.Address, RefusalReason.Protocol, $"dropped peer {Address}: {CloseReason}");
            _swarm.Logger.LogDebug("dropping peer {Peer}: {Reason}", Address, CloseReason);
        }
        catch (OperationCanceledException)
        {
            CloseReason ??= "stopped";
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            CloseReason ??= e.Message;
        }
        finally
        {
            Connection.Close();
            ReleaseLargeFrame();
            _uploads.Writer.TryComplete();
            _swarm.Detach(this);
            try { await uploads.ConfigureAwait(false); } catch (Exception) { }
            await Connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Frames larger than this reserve their size from the node's share for large frames while they arrive.</summary>
    private const int LargeFrame = 1024 * 1024;

    /// <summary>
    /// Sees each frame's prefix before its body is buffered: a kind the session does not expect now is refused at once
    /// (the connection closes), and a large frame must first get its size from the node's share, so no peer — nor many
    /// together — can pin memory by sending most of a frame and stopping.
    /// </summary>
    private void Admit(MessageKind kind, int length)
    {
        switch (kind)
        {
            case MessageKind.Hello or MessageKind.HelloProof:
                throw new WireProtocolException($"unexpected {kind} after the handshake");
            case MessageKind.Hashes when !HashesRequested:
                throw new WireProtocolException($"unexpected {kind} frame of {length} bytes (the manifest was not asked for)");
            case MessageKind.PieceHashes when _swarm.Content is { Manifest.IsLive: false }:
                throw new WireProtocolException($"unexpected {kind} frame of {length} bytes (the content is not live)");
            case MessageKind.Block when Outstanding.Count == 0 && Environment.TickCount64 - Interlocked.Read(ref LastRequested) > _swarm.Engine.Options.RequestTimeout.TotalMilliseconds:
                throw new WireProtocolException($"unexpected block of {length} bytes (nothing was requested)");
        }
        if (length > LargeFrame)
        {
            if (!_swarm.Engine.TryReserveLargeFrame(length))
                throw new WireProtocolException($"{kind} frame of {length} bytes refused: the node's memory for large frames ({_swarm.Engine.Options.MaxLargeFrameBytes >> 20} MiB) is in use");
            _largeFrame = length;
        }
    }

    private void ReleaseLargeFrame()
    {
        int held = Interlocked.Exchange(ref _largeFrame, 0);
        if (held > 0) _swarm.Engine.ReleaseLargeFrame(held);
    }

    private async ValueTask OnFrameAsync(Frame frame)
    {
        try
        {
            await HandleFrameAsync(frame).ConfigureAwait(false);
        }
        finally
        {
            ReleaseLargeFrame();
        }
    }

    private async ValueTask HandleFrameAsync(Frame frame)
    {
        switch (frame.Kind)
        {
            case MessageKind.KeepAlive:
                return;
            case MessageKind.Bitfield:
                FirstAvailability();
                _swarm.OnAvailability(this, WireMessage.Decode<BitfieldMessage>(frame.Body).Bits, seed: false);
                break;
            case MessageKind.HaveAll:
                ExpectEmpty(frame);
                FirstAvailability();
                _swarm.OnAvailability(this, null, seed: true);
                break;
            case MessageKind.HaveNone:
                ExpectEmpty(frame);
                FirstAvailability();
                _swarm.OnAvailability(this, null, seed: false);
                break;
            case MessageKind.Have:
                _availabilityReceived = true;
                _swarm.OnHave(this, WireMessage.Decode<Have>(frame.Body).Piece);
                break;
            case MessageKind.Interested:
                ExpectEmpty(frame);
                if (_swarm.OnInterested(this, true)) Connection.PostSignal(MessageKind.Unchoke);
                return;
            case MessageKind.NotInterested:
                ExpectEmpty(frame);
                _swarm.OnInterested(this, false);
                return;
            case MessageKind.Choke:
                ExpectEmpty(frame);
                _swarm.OnChoke(this, true);
                return;
            case MessageKind.Unchoke:
                ExpectEmpty(frame);
                _swarm.OnChoke(this, false);
                break;
            case MessageKind.Request:
                OnRequest(WireMessage.Decode<Request>(frame.Body));
                return;
            case MessageKind.Cancel:
                var cancel = WireMessage.Decode<Cancel>(frame.Body);
                lock (_cancelled)
                {
                    // Cancels that arrive after the block went out would pile up; past this bound, forgetting them only
                    // means sending a block the peer no longer wants.
                    if (_cancelled.Count >= WireLimits.MaxQueuedRequests * 2) _cancelled.Clear();
                    _cancelled.Add(BlockKey(cancel.Piece, cancel.Offset));
                }
                return;
            case MessageKind.Block:
                var header = WireMessage.DecodeHeader<BlockHeader>(frame.Body, out long consumed);
                var payload = frame.Body.Slice(consumed);
                if (_swarm.Engine.DownloadLimiter is { } limiter) await limiter.AcquireAsync((int)payload.Length).ConfigureAwait(false);
                var cancels = _swarm.OnBlock(this, header, payload);
                if (cancels != null) foreach (var (peer, c) in cancels) peer.Connection.Post(c);
                break;
            case MessageKind.Reject:
                _swarm.OnReject(this, WireMessage.Decode<Reject>(frame.Body));
                break;
            case MessageKind.HashesRequest:
                ExpectEmpty(frame);
                var content = _swarm.Content;
                if (content == null) Connection.Post(new Reject(-1, 0, 0, RejectReason.NotAvailable));
                else Connection.Post(new Hashes(content.Manifest.Encoded, content.Signature));
                return;
            case MessageKind.Hashes:
                HashesRequested = false;
                _swarm.OnHashes(this, WireMessage.Decode<Hashes>(frame.Body));
                break;
            case MessageKind.PieceHashes:
                _swarm.OnPieceHashes(this, WireMessage.Decode<PieceHashes>(frame.Body));
                return;
            case MessageKind.Seal:
                _swarm.OnSeal(this, WireMessage.Decode<Seal>(frame.Body));
                return;
            case MessageKind.PeerList:
                _swarm.OnPeerList(WireMessage.Decode<PeerList>(frame.Body));
                return;
            case MessageKind.Hello:
            case MessageKind.HelloProof:
                throw new WireProtocolException($"unexpected {frame.Kind} after the handshake");
            default:
                throw new WireProtocolException($"unexpected message kind {frame.Kind}");
        }
        _swarm.Pump(this);
    }

    private void FirstAvailability()
    {
        if (_availabilityReceived) throw new WireProtocolException("bitfield / have-all / have-none must come once, before any have");
        _availabilityReceived = true;
    }

    private static void ExpectEmpty(Frame frame)
    {
        if (!frame.Body.IsEmpty) throw new WireProtocolException($"{frame.Kind} must have no body");
    }

    private void OnRequest(Request request)
    {
        lock (_cancelled) _cancelled.Remove(BlockKey(request.Piece, request.Offset)); // a new request outlives an old cancel
        var reason = _swarm.CheckRequest(this, request);
        if (reason == null && !_uploads.Writer.TryWrite(request)) reason = RejectReason.TooManyRequests;
        if (reason != null) Connection.Post(new Reject(request.Piece, request.Offset, request.Length, reason.Value));
    }

    private async Task UploadLoopAsync(CancellationToken cancellationToken)
    {
        var content = _swarm.Content;
        await foreach (var request in _uploads.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            bool cancelled;
            lock (_cancelled) cancelled = _cancelled.Remove(BlockKey(request.Piece, request.Offset));
            content ??= _swarm.Content;
            if (!cancelled && content != null && _swarm.IsChoking(this))
            {
                Connection.Post(new Reject(request.Piece, request.Offset, request.Length, RejectReason.Choked));
                continue;
            }
            if (cancelled || content == null)
            {
                Connection.Post(new Reject(request.Piece, request.Offset, request.Length, cancelled ? RejectReason.Cancelled : RejectReason.NotAvailable));
                continue;
            }
            if (!_swarm.AllowUpload(this, request.Piece))
            {
                Connection.Post(new Reject(request.Piece, request.Offset, request.Length, RejectReason.Elsewhere));
                continue;
            }
            if (_swarm.Engine.UploadLimiter is { } limiter) await limiter.AcquireAsync(request.Length, cancellationToken).ConfigureAwait(false);
            long offset = content.Layout.PieceOffset(request.Piece) + request.Offset;
            try
            {
                await Connection.SendBlockAsync(new BlockHeader(request.Piece, request.Offset), request.Length, (content, offset),
                    static (s, span) => s.content.ReadVerified(s.offset, span), cancellationToken).ConfigureAwait(false);
            }
            catch (PieceRottenException)
            {
                // The stored bytes failed their hash: nothing was sent, the piece is dropped (the swarm logs it once).
                Connection.Post(new Reject(request.Piece, request.Offset, request.Length, RejectReason.NotAvailable));
                continue;
            }
            catch (ContentModifiedException e)
            {
                _swarm.Logger.LogError("{Message}", e.Message);
                Connection.Post(new Reject(request.Piece, request.Offset, request.Length, RejectReason.NotAvailable));
                continue;
            }
            BytesUploaded += request.Length;
            Interlocked.Exchange(ref _lastBlock, Environment.TickCount64);
            _swarm.RecordUpload(request.Length);
        }
    }

    /// <summary>Rejects every queued request (when choking the peer), so each still gets its one answer.</summary>
    internal void RejectQueued(RejectReason reason)
    {
        while (_uploads.Reader.TryRead(out var r)) Connection.Post(new Reject(r.Piece, r.Offset, r.Length, reason));
    }

    public override string ToString() => $"{Address} ({Peer.NodeId.ToHex()[..12]})";
}
