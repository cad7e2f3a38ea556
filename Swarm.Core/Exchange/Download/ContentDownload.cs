using System.Buffers;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Storage;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange.Download;

/// <summary>
/// The download side of one content's swarm: the content itself once its manifest is known (complete or not), who has
/// which piece and whether we want it, the requests the <see cref="BlockScheduler"/> picks, blocks and rejects as they
/// come, verification by the <see cref="PieceVerifier"/> with <see cref="SmartBan"/>, and completion. It runs under the
/// roster's lock and sends through the sessions; a node that only seeds keeps its content here too.
/// </summary>
internal sealed class ContentDownload
{
    private readonly PeerRoster _roster;
    private readonly SwarmEngine _engine;
    private readonly ContentId _id;
    private readonly Action<StoredContent> _completing;
    private readonly CancellationToken _stop;
    private readonly Lock _manifestGate = new();
    private readonly Availability _availability = new();
    private readonly SmartBan _smartBan = new();
    private TaskCompletionSource<StoredContent> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private StoredContent? _content;
    private BlockScheduler? _scheduler;
    private PieceVerifier? _verifier;
    private long _lastProgress = Environment.TickCount64;
    private long _bytesFromPeers, _bytesWasted;
    private int _hashFailures;

    /// <param name="completing">Called once every piece is verified, before <see cref="Completion"/> completes.</param>
    public ContentDownload(PeerRoster roster, SwarmEngine engine, ContentId id, StoredContent? content, Action<StoredContent> completing, CancellationToken stop)
    {
        _roster = roster;
        _engine = engine;
        _id = id;
        _completing = completing;
        _stop = stop;
        if (content != null) SetContent(content);
    }

    public StoredContent? Content => Volatile.Read(ref _content);
    /// <summary>Under the roster's lock: the scheduler, once the manifest is known.</summary>
    public BlockScheduler? Scheduler => _scheduler;
    public bool IsDownloading { get; private set; }
    public Task<StoredContent> Completion => Volatile.Read(ref _done).Task;
    public long BytesFromPeers => Interlocked.Read(ref _bytesFromPeers);
    public long BytesWasted => Interlocked.Read(ref _bytesWasted);
    public int HashFailures => Volatile.Read(ref _hashFailures);
    public long LastProgress => Interlocked.Read(ref _lastProgress);
    private ILogger Logger => _engine.Logger;

    /// <summary>Under the roster's lock, or before the swarm is shared.</summary>
    private void SetContent(StoredContent content)
    {
        content.PieceRotten += OnPieceRotten;
        _content = content;
        _scheduler = new BlockScheduler(content.Layout, content.Verified, _engine.PieceBuffers);
        _availability.Install(content, _scheduler);
    }

    /// <summary>Starts downloading: verification workers run, and sessions start requesting as soon as the manifest is known.</summary>
    public void Start()
    {
        List<PeerSession> interested = [];
        List<PeerSession> sessions;
        lock (_roster.Sync)
        {
            if (IsDownloading) return;
            if (_content is { IsComplete: true })
            {
                _done.TrySetResult(_content);
                return;
            }
            // A content that completed before and lost pieces to rot since: a new completion to wait for.
            if (_done.Task.IsCompleted) Volatile.Write(ref _done, new TaskCompletionSource<StoredContent>(TaskCreationOptions.RunContinuationsAsynchronously));
            IsDownloading = true;
            _lastProgress = Environment.TickCount64;
            _verifier ??= new PieceVerifier(OnPieceChecked, OnPieceWriteFailed, _stop);
            // Peers connected while this node was complete: want from them what was lost.
            foreach (var s in _roster.Sessions) if (_availability.UpdateInterest(s.State, IsDownloading)) interested.Add(s);
            sessions = [.. _roster.Sessions];
        }
        foreach (var s in interested) s.Signal(MessageKind.Interested);
        foreach (var s in sessions) Pump(s);
    }

    public void Fail(Exception error)
    {
        if (_done.TrySetException(error)) Logger.LogDebug(error, "download of {Id} failed", _id);
    }

    /// <summary>
    /// A stored piece failed its hash check when read (served, mirrored or exported): it is already out of the verified
    /// set, so requests for it are refused; log it once, count it, and let the node update its holdings and repair.
    /// </summary>
    private void OnPieceRotten(int piece)
    {
        var content = Content;
        if (content == null) return;
        Logger.LogWarning("piece {Piece} of {Id} failed its hash check in the store (its bytes in {Path} changed on disk after they were verified); " +
            "it is no longer served and is fetched again from peers (by the node's repair, or the next 'swarm get' of it)", piece, _id.ToUri(), content.DataPath);
        _engine.OnPieceRotten(content, piece);
    }

    // ---- availability and interest ----

    public void OnAvailability(PeerSession session, byte[]? bits, bool seed)
    {
        bool interested;
        lock (_roster.Sync)
        {
            _availability.OnAvailability(session.State, bits, seed);
            interested = _availability.UpdateInterest(session.State, IsDownloading);
        }
        if (interested) session.Signal(MessageKind.Interested);
    }

    public void OnHave(PeerSession session, int piece)
    {
        bool interested;
        lock (_roster.Sync)
        {
            _availability.OnHave(session.State, piece);
            interested = _availability.UpdateInterest(session.State, IsDownloading);
        }
        if (interested) session.Signal(MessageKind.Interested);
    }

    public void OnChoke(PeerSession session, bool choking)
    {
        lock (_roster.Sync) session.State.PeerChoking = choking;
    }

    // ---- manifest ----

    public void OnHashes(PeerSession session, Hashes hashes)
    {
        if (Content != null) return;
        Manifest manifest;
        try
        {
            manifest = Manifest.Decode(hashes.Manifest);
        }
        catch (InvalidDataException e)
        {
            throw new WireProtocolException("bad manifest: " + e.Message);
        }
        if (manifest.Id != _id || (!manifest.IsLive && !manifest.VerifySignature(hashes.Signature)))
        {
            Ban(session.State, manifest.Id != _id ? "sent a manifest that does not match the content id" : "sent a manifest with a bad signature");
            return;
        }
        StoredContent content;
        List<(PeerSession, bool)> interest = [];
        lock (_manifestGate) // several peers may answer at once: install the manifest once
        {
            if (Content != null) return;
            try
            {
                content = _engine.Store.OpenOrCreate(manifest, hashes.Signature);
                content.AcquireWriter();
            }
            catch (IOException e)
            {
                Fail(e);
                return;
            }
            List<PeerSession> liars = [];
            lock (_roster.Sync)
            {
                SetContent(content);
                foreach (var s in _roster.Sessions) if (!LiveSeal.ApplyDeferred(content, s.State)) liars.Add(s);
                foreach (var s in _roster.Sessions)
                {
                    if (liars.Contains(s)) continue;
                    _availability.ApplyPending(s.State);
                    interest.Add((s, _availability.UpdateInterest(s.State, IsDownloading)));
                }
            }
            foreach (var liar in liars) Ban(liar.State, "sent a piece hash the ingester did not sign");
        }
        Logger.LogInformation("manifest for {Id}: {Length} bytes in {Pieces} pieces of {PieceSize}", _id, manifest.Length, manifest.PieceCount, manifest.PieceSize);
        if (content.IsComplete) _done.TrySetResult(content);
        foreach (var (s, interested) in interest)
        {
            if (interested) s.Signal(MessageKind.Interested);
            Pump(s);
        }
    }

    // ---- requests and blocks ----

    /// <summary>Sends as many requests to the peer as its pipeline depth allows.</summary>
    public void Pump(PeerSession session)
    {
        List<Request> requests;
        lock (_roster.Sync)
        {
            if (!IsDownloading || _scheduler == null || _content!.IsComplete) return;
            int want = BlockScheduler.Wanted(session.State);
            if (want <= 0) return;
            requests = [];
            _scheduler.PickBlocks(session.State, want, requests, Environment.TickCount64);
        }
        foreach (var r in requests) session.Send(r);
    }

    /// <summary>A block arrived: into its piece if we asked this peer for it; the other copy asked for in end game is cancelled.</summary>
    public void OnBlock(PeerSession session, BlockHeader header, ReadOnlySequence<byte> payload)
    {
        int length = (int)payload.Length;
        PartialPiece? complete;
        PeerSession? cancel = null;
        StoredContent content;
        lock (_roster.Sync)
        {
            if (_scheduler == null) throw new WireProtocolException($"block {header.Piece}/{header.Offset} of {length} bytes does not fit the content");
            content = _content!;
            if (_scheduler.OnBlock(session.State, header.Piece, header.Offset, payload, out var other, out complete) != BlockResult.Stored)
            {
                _bytesWasted += length; // cancelled, timed out or already done: not an error
                return;
            }
            if (other != null) cancel = _roster.Find(other);
            _bytesFromPeers += length;
            _engine.CountFromPeers(length);
        }
        if (complete != null) _verifier!.Enqueue(content, complete);
        cancel?.Send(new Cancel(header.Piece, header.Offset, length));
    }

    public void OnReject(PeerSession session, Reject reject)
    {
        if (reject.Piece < 0) return; // a refused hashes request: another peer will answer it
        List<Cancel>? cancels;
        lock (_roster.Sync)
        {
            if (_scheduler == null) return;
            cancels = _scheduler.OnReject(session.State, reject, Environment.TickCount64);
        }
        if (cancels != null) foreach (var c in cancels) session.Send(c);
    }

    /// <summary>Under the roster's lock, once a second: requests unanswered for the request timeout go to other peers.</summary>
    public void ExpireRequests(PeerState peer, long now) => _scheduler?.ExpireRequests(peer, now, _engine.Options.RequestTimeout.TotalMilliseconds);

    /// <summary>Under the roster's lock: the peer left.</summary>
    public void Detach(PeerState peer)
    {
        if (_scheduler != null) _scheduler.Detach(peer);
        else peer.Outstanding.Clear();
    }

    // ---- verification ----

    private void OnPieceChecked(StoredContent content, PartialPiece piece, PieceCheck check)
    {
        if (check == PieceCheck.NoHash)
        {
            lock (_roster.Sync) _scheduler!.EndVerify(piece.Index);
            piece.Return(_engine.PieceBuffers);
            Logger.LogWarning("piece {Piece} of live {Id} arrived before its signed hash; dropped", piece.Index, _id);
            return;
        }
        bool ok = check == PieceCheck.Verified;
        bool suspected;
        lock (_roster.Sync) suspected = _smartBan.IsSuspected(piece.Index);
        var blocks = SmartBan.NeedsDigests(piece, ok, suspected) ? SmartBan.Digests(piece) : null;
        List<PeerSession> sessions;
        List<PeerState>? banned;
        lock (_roster.Sync)
        {
            _scheduler!.EndVerify(piece.Index);
            sessions = [.. _roster.Sessions];
            if (ok) Interlocked.Exchange(ref _lastProgress, Environment.TickCount64);
            banned = _smartBan.Judge(piece, ok, blocks);
        }
        piece.Return(_engine.PieceBuffers);
        if (ok)
        {
            if (banned != null) foreach (var liar in banned) Ban(liar, $"sent a block of piece {piece.Index} that differs from the verified data");
            Announce(content, piece.Index, sessions);
            if (content.IsComplete) Complete(content, sessions);
        }
        else
        {
            Interlocked.Increment(ref _hashFailures);
            _engine.CountPieceFailed();
            if (banned != null) Ban(banned[0], $"sent piece {piece.Index}, which failed its SHA-256 check");
            else Logger.LogWarning("piece {Piece} of {Id} from {Count} peers failed its SHA-256 check; they are on parole until one is caught", piece.Index, _id, piece.Contributors.Count);
        }
        foreach (var s in sessions) Pump(s);
    }

    private void OnPieceWriteFailed(StoredContent content, PartialPiece piece, IOException error)
    {
        piece.Return(_engine.PieceBuffers);
        Fail(new IOException($"cannot write {_id} to {content.Directory}: {error.Message}", error));
    }

    private void Complete(StoredContent content, List<PeerSession> sessions)
    {
        lock (_roster.Sync)
        {
            IsDownloading = false;
            foreach (var s in sessions) s.State.AmInterested = false;
        }
        foreach (var s in sessions) s.Signal(MessageKind.NotInterested);
        _completing(content);
        _done.TrySetResult(content);
    }

    /// <summary>Tells every peer about a newly verified piece (with its signed hash for live content) and the DHT.</summary>
    public void Announce(StoredContent content, int piece, List<PeerSession> sessions)
    {
        if (content.Manifest.IsLive)
        {
            var hash = new PieceHashes([LiveSeal.SignedHash(content, piece)]);
            foreach (var s in sessions) s.Send(hash);
        }
        foreach (var s in sessions) s.Send(new Have(piece));
        _engine.OnPieceVerified(content, piece);
    }

    /// <summary>Bans the peer (node id and address) for sending bad data, drops what it contributed, and closes its session.</summary>
    public void Ban(PeerState peer, string reason)
    {
        PeerSession? session;
        lock (_roster.Sync)
        {
            _scheduler?.DropContributions(peer); // nothing a liar sent stays in a piece being assembled
            session = _roster.Find(peer);
        }
        _engine.Bans.Ban(peer.NodeId, peer.Address, _engine.Options.BanDuration);
        Logger.LogWarning("banned peer {Peer}: {Reason}", peer, reason);
        session?.Close("banned: " + reason);
    }

    // ---- diagnostics and closing ----

    /// <summary>Under the roster's lock.</summary>
    public string Describe() =>
        $"verified {_content?.Verified.Count ?? 0}/{_content?.Layout.PieceCount ?? 0}; partial [{_scheduler?.DescribePartials()}]; verifying {_scheduler?.VerifyingCount ?? 0}";

    /// <summary>Missing pieces that every connected peer has answered "not available" (at most <paramref name="max"/>).</summary>
    public List<int> PiecesNoPeerServes(int max)
    {
        lock (_roster.Sync) return _roster.Sessions.Count == 0 || _scheduler == null ? [] : _scheduler.PiecesNoPeerServes(_roster.Sessions.Select(s => s.State), max);
    }

    /// <summary>After the sessions are closed: stops the verification workers and gives every piece buffer back.</summary>
    public async Task StopAsync()
    {
        if (_verifier != null) await _verifier.StopAsync().ConfigureAwait(false);
        lock (_roster.Sync) _scheduler?.ReturnAll();
        _done.TrySetCanceled();
        if (_content != null) _content.PieceRotten -= OnPieceRotten;
        _content?.Dispose();
    }
}
