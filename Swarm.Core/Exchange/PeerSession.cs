using System.Net;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Storage;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>
/// One connected peer for one content: its connection, which only the session writes to (every frame to the peer goes
/// through <see cref="Send{T}"/>, <see cref="Signal"/> and the few methods beside them), the frames it receives turned
/// into calls on <see cref="ContentSwarm"/>, and the requests the peer has queued with us (served by an upload loop, one
/// answer per request). What the swarm knows and decides about the peer is its <see cref="State"/>.
/// </summary>
public sealed class PeerSession
{
    public const int InitialDepth = PeerState.InitialDepth;
    public const int MinDepth = PeerState.MinDepth;
    public const int MaxDepth = PeerState.MaxDepth;

    private readonly ContentSwarm _swarm;
    /// <summary>Written only by this session: every frame to the peer goes out through its methods.</summary>
    private readonly FrameConnection _connection;
    private readonly Channel<Request> _uploads = Channel.CreateBounded<Request>(new BoundedChannelOptions(WireLimits.MaxQueuedRequests) { SingleReader = false, SingleWriter = true });
    private readonly HashSet<long> _cancelled = [];
    private bool _availabilityReceived;
    private int _largeFrame;

    internal PeerSession(ContentSwarm swarm, FrameConnection connection, PeerIdentity peer, bool outbound)
    {
        _swarm = swarm;
        _connection = connection;
        Peer = peer;
        Outbound = outbound;
        Address = outbound ? connection.RemoteEndPoint : new IPEndPoint(connection.RemoteEndPoint.Address, peer.ListenPort);
        State = new PeerState(peer.NodeId, Address);
    }

    public PeerIdentity Peer { get; }
    public bool Outbound { get; }
    /// <summary>Where the peer accepts connections (for bans and redials).</summary>
    public IPEndPoint Address { get; }
    /// <summary>The address the connection comes from (for the per-address limits).</summary>
    public IPAddress RemoteAddress => _connection.RemoteEndPoint.Address;
    public string? CloseReason { get; private set; }
    /// <summary>What the swarm knows and decides about this peer; guarded by the swarm's lock.</summary>
    internal PeerState State { get; }
    public long BytesDownloaded => State.BytesDownloaded;
    public long BytesUploaded => State.BytesUploaded;
    /// <summary>Milliseconds since a block went either way (or since the session started).</summary>
    public long IdleFor => State.IdleFor;

    /// <summary>We asked this peer for the manifest and it has not come yet: the one state in which a Hashes frame is expected.</summary>
    internal volatile bool HashesRequested;
    /// <summary>Closed to make room for a newcomer: no longer counted against the peer limits.</summary>
    internal volatile bool GivingUpSlot;

    internal void Close(string reason)
    {
        CloseReason ??= reason;
        _connection.Close();
    }

    // ---- sending: the one way frames reach this peer ----

    /// <summary>Queues a message without waiting (<see cref="FrameConnection.Post{T}"/>): never blocks on back-pressure.</summary>
    internal void Send<T>(T message) where T : IWireMessage<T> => _connection.Post(message);

    /// <summary>Queues a message without a body (interested, unchoke, ...) or a keep-alive, without waiting.</summary>
    internal void Signal(MessageKind kind) => _connection.PostSignal(kind);

    /// <summary>Chokes the peer: the Choke goes out, and each request it has queued gets its reject.</summary>
    internal void Choke()
    {
        Signal(MessageKind.Choke);
        RejectQueued(RejectReason.Choked);
    }

    /// <summary>
    /// The first frames after the handshake, waiting on back-pressure: for live content the signed hashes of the pieces
    /// in <paramref name="held"/>, then what this node holds, and a request for the manifest when it has none.
    /// </summary>
    internal async Task GreetAsync(StoredContent? content, byte[]? held, CancellationToken cancellationToken)
    {
        if (content is { Manifest.IsLive: true } && held != null)
            foreach (var batch in LiveSeal.SignedHashes(content, Bitfield.FromBytes(held, content.Layout.PieceCount)))
                await _connection.SendAsync(batch, cancellationToken).ConfigureAwait(false);
        if (content == null) await _connection.SendSignalAsync(MessageKind.HaveNone, cancellationToken).ConfigureAwait(false);
        else if (content.IsComplete) await _connection.SendSignalAsync(MessageKind.HaveAll, cancellationToken).ConfigureAwait(false);
        else if (content.Verified.IsEmpty) await _connection.SendSignalAsync(MessageKind.HaveNone, cancellationToken).ConfigureAwait(false);
        else await _connection.SendAsync(new BitfieldMessage(held!), cancellationToken).ConfigureAwait(false);
        if (content == null)
        {
            HashesRequested = true; // the one time a Hashes frame (up to 8 MiB) is expected from this peer
            await _connection.SendSignalAsync(MessageKind.HashesRequest, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Have messages (with their signed hashes, for live content) for pieces verified while the greeting went out.</summary>
    internal async Task SendHavesAsync(StoredContent content, List<int> pieces, CancellationToken cancellationToken)
    {
        foreach (int piece in pieces)
        {
            if (content.Manifest.IsLive) await _connection.SendAsync(new PieceHashes([LiveSeal.SignedHash(content, piece)]), cancellationToken).ConfigureAwait(false);
            await _connection.SendAsync(new Have(piece), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Once a second: closes a connection silent for the idle timeout, or keeps a quiet one alive.</summary>
    internal void Housekeep(long now, EngineOptions options)
    {
        if (now - _connection.LastReceived > options.IdleTimeout.TotalMilliseconds) Close("idle timeout");
        else if (now - _connection.LastSent > options.KeepAliveInterval.TotalMilliseconds) Signal(MessageKind.KeepAlive);
    }

    internal async Task RunAsync(CancellationToken cancellationToken)
    {
        Task uploads = Task.CompletedTask;
        try
        {
            await _swarm.AttachAsync(this, cancellationToken).ConfigureAwait(false);
            uploads = UploadLoopAsync(cancellationToken);
            await _connection.ReceiveAsync(OnFrameAsync, cancellationToken, Admit).ConfigureAwait(false);
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
            _swarm.Engine.Refusals.Record(RemoteAddress, RefusalReason.Protocol, $"dropped peer {Address}: {CloseReason}");
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
            _connection.Close();
            ReleaseLargeFrame();
            _uploads.Writer.TryComplete();
            _swarm.Detach(this);
            try { await uploads.ConfigureAwait(false); } catch (Exception) { }
            await _connection.DisposeAsync().ConfigureAwait(false);
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
            case MessageKind.Block when State.Outstanding.Count == 0 && Environment.TickCount64 - Interlocked.Read(ref State.LastRequested) > _swarm.Engine.Options.RequestTimeout.TotalMilliseconds:
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
                _swarm.Download.OnAvailability(this, WireMessage.Decode<BitfieldMessage>(frame.Body).Bits, seed: false);
                break;
            case MessageKind.HaveAll:
                ExpectEmpty(frame);
                FirstAvailability();
                _swarm.Download.OnAvailability(this, null, seed: true);
                break;
            case MessageKind.HaveNone:
                ExpectEmpty(frame);
                FirstAvailability();
                _swarm.Download.OnAvailability(this, null, seed: false);
                break;
            case MessageKind.Have:
                _availabilityReceived = true;
                _swarm.Download.OnHave(this, WireMessage.Decode<Have>(frame.Body).Piece);
                break;
            case MessageKind.Interested:
                ExpectEmpty(frame);
                _swarm.OnInterested(this, true);
                return;
            case MessageKind.NotInterested:
                ExpectEmpty(frame);
                _swarm.OnInterested(this, false);
                return;
            case MessageKind.Choke:
                ExpectEmpty(frame);
                _swarm.Download.OnChoke(this, true);
                return;
            case MessageKind.Unchoke:
                ExpectEmpty(frame);
                _swarm.Download.OnChoke(this, false);
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
                    _cancelled.Add(PeerState.BlockKey(cancel.Piece, cancel.Offset));
                }
                return;
            case MessageKind.Block:
                var header = WireMessage.DecodeHeader<BlockHeader>(frame.Body, out long consumed);
                var payload = frame.Body.Slice(consumed);
                if (_swarm.Engine.DownloadLimiter is { } limiter) await limiter.AcquireAsync((int)payload.Length).ConfigureAwait(false);
                _swarm.Download.OnBlock(this, header, payload);
                break;
            case MessageKind.Reject:
                _swarm.Download.OnReject(this, WireMessage.Decode<Reject>(frame.Body));
                break;
            case MessageKind.HashesRequest:
                ExpectEmpty(frame);
                var content = _swarm.Content;
                if (content == null) Send(new Reject(-1, 0, 0, RejectReason.NotAvailable));
                else Send(new Hashes(content.Manifest.Encoded, content.Signature));
                return;
            case MessageKind.Hashes:
                HashesRequested = false;
                _swarm.Download.OnHashes(this, WireMessage.Decode<Hashes>(frame.Body));
                break;
            case MessageKind.PieceHashes:
                _swarm.OnPieceHashes(this, WireMessage.Decode<PieceHashes>(frame.Body));
                return;
            case MessageKind.Seal:
                _swarm.OnSeal(WireMessage.Decode<Seal>(frame.Body));
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
        _swarm.Download.Pump(this);
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
        lock (_cancelled) _cancelled.Remove(PeerState.BlockKey(request.Piece, request.Offset)); // a new request outlives an old cancel
        var reason = _swarm.CheckRequest(this, request);
        if (reason == null && !_uploads.Writer.TryWrite(request)) reason = RejectReason.TooManyRequests;
        if (reason != null) Send(new Reject(request.Piece, request.Offset, request.Length, reason.Value));
    }

    private async Task UploadLoopAsync(CancellationToken cancellationToken)
    {
        var content = _swarm.Content;
        await foreach (var request in _uploads.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            bool cancelled;
            lock (_cancelled) cancelled = _cancelled.Remove(PeerState.BlockKey(request.Piece, request.Offset));
            content ??= _swarm.Content;
            if (!cancelled && content != null && _swarm.IsChoking(this))
            {
                Send(new Reject(request.Piece, request.Offset, request.Length, RejectReason.Choked));
                continue;
            }
            if (cancelled || content == null)
            {
                Send(new Reject(request.Piece, request.Offset, request.Length, cancelled ? RejectReason.Cancelled : RejectReason.NotAvailable));
                continue;
            }
            if (!_swarm.AllowUpload(this, request.Piece))
            {
                Send(new Reject(request.Piece, request.Offset, request.Length, RejectReason.Elsewhere));
                continue;
            }
            if (_swarm.Engine.UploadLimiter is { } limiter) await limiter.AcquireAsync(request.Length, cancellationToken).ConfigureAwait(false);
            long offset = content.Layout.PieceOffset(request.Piece) + request.Offset;
            try
            {
                await _connection.SendBlockAsync(new BlockHeader(request.Piece, request.Offset), request.Length, (content, offset),
                    static (s, span) => s.content.ReadVerified(s.offset, span), cancellationToken).ConfigureAwait(false);
            }
            catch (PieceRottenException)
            {
                // The stored bytes failed their hash: nothing was sent, the piece is dropped (the swarm logs it once).
                Send(new Reject(request.Piece, request.Offset, request.Length, RejectReason.NotAvailable));
                continue;
            }
            catch (ContentModifiedException e)
            {
                _swarm.Logger.LogError("{Message}", e.Message);
                Send(new Reject(request.Piece, request.Offset, request.Length, RejectReason.NotAvailable));
                continue;
            }
            State.RecordUpload(request.Length);
            _swarm.RecordUpload(request.Length);
        }
    }

    /// <summary>Rejects every queued request (when choking the peer), so each still gets its one answer.</summary>
    private void RejectQueued(RejectReason reason)
    {
        while (_uploads.Reader.TryRead(out var r)) Send(new Reject(r.Piece, r.Offset, r.Length, reason));
    }

    public override string ToString() => $"{Address} ({Peer.NodeId.ToHex()[..12]})";
}
