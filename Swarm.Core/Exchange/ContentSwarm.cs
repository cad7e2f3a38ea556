using System.Net;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Exchange.Download;
using Swarm.Core.Exchange.Upload;
using Swarm.Core.Storage;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>
/// Everything a node does for one content, coordinated: the sessions (<see cref="PeerRoster"/>, whose lock guards every
/// part), the download side (<see cref="ContentDownload"/>: availability, requests, verification, smart ban), the upload
/// side (<see cref="UploadSlots"/>, <see cref="SeedSteering"/>), live content (<see cref="LiveSeal"/>), peer exchange
/// and housekeeping. The parts decide; the sessions send. Pieces are assembled in memory, checked against the manifest
/// hash and only then written to the store, announced with have messages and served: an unverified byte never reaches
/// disk or a peer.
/// </summary>
public sealed class ContentSwarm : IAsyncDisposable
{
    private readonly PeerRoster _roster = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly UploadSlots _slots;
    private readonly SeedSteering _steering = new();
    private readonly LiveSeal _live = new();
    private readonly PeerExchange _peerExchange = new();
    private long _lastChoke;
    private long _bytesUploaded;

    internal ContentSwarm(SwarmEngine engine, ContentId id, StoredContent? content)
    {
        Engine = engine;
        Id = id;
        _slots = new UploadSlots(engine.Options);
        Download = new ContentDownload(_roster, engine, id, content, OnComplete, _stop.Token);
    }

    public ContentId Id { get; }
    internal SwarmEngine Engine { get; }
    internal ILogger Logger => Engine.Logger;
    /// <summary>The download side: what sessions report about pieces, blocks and the manifest goes here.</summary>
    internal ContentDownload Download { get; }
    public StoredContent? Content => Download.Content;
    public bool IsDownloading => Download.IsDownloading;
    public Task<StoredContent> Completion => Download.Completion;
    public long BytesFromPeers => Download.BytesFromPeers;
    public long BytesUploaded => Interlocked.Read(ref _bytesUploaded);
    public long BytesWasted => Download.BytesWasted;
    public int HashFailures => Download.HashFailures;
    /// <summary>Milliseconds (Environment.TickCount64) of the last verified piece or of the start of the download.</summary>
    public long LastProgress => Download.LastProgress;
    /// <summary>The ingester's signature over the sealed manifest, once checked against the complete live content.</summary>
    public byte[]? SealSignature => _live.Signature;
    /// <summary>Completes when this live content is sealed.</summary>
    public Task SealedTask => _live.SealedTask;
    /// <summary>The sealed (ordinary) entry made from this live content, once sealed.</summary>
    public StoredContent? Sealed => _live.Sealed;
    public int PeerCount => _roster.Count;

    /// <summary>Whether some connected peer still wants pieces from this node.</summary>
    public bool HasInterestedPeers
    {
        get { lock (_roster.Sync) return _roster.Sessions.Any(s => s.State.PeerInterested); }
    }

    public IReadOnlyList<PeerSession> Sessions => _roster.Snapshot();

    /// <summary>How many peers each piece was handed to by this complete node (seed steering's count).</summary>
    internal int[] SentCounts
    {
        get { lock (_roster.Sync) return _steering.SentCounts; }
    }

    /// <summary>A one-line account of the download state, for stall diagnostics.</summary>
    public string Describe()
    {
        lock (_roster.Sync) return string.Join("; ", _roster.Sessions.Select(s => $"peer {s.Address}: {s.State.Describe()}").Prepend(Download.Describe()));
    }

    /// <summary>Missing pieces that every connected peer has answered "not available" (at most <paramref name="max"/>).</summary>
    public List<int> PiecesNoPeerServes(int max = 10) => Download.PiecesNoPeerServes(max);

    internal void RecordUpload(int bytes)
    {
        Interlocked.Add(ref _bytesUploaded, bytes);
        Engine.CountUploaded(bytes);
    }

    /// <summary>Starts downloading: verification workers run, and sessions start requesting as soon as the manifest is known.</summary>
    internal void StartDownload() => Download.Start();

    internal void Fail(Exception error) => Download.Fail(error);

    /// <summary>Every piece is verified: now a seed, the choker ranks by round robin instead of by what peers give us.</summary>
    private void OnComplete(StoredContent content)
    {
        RunChoker(Environment.TickCount64);
        Logger.LogInformation("{Id} complete and verified", Id);
        if (content.Manifest.IsLive) TrySeal();
    }

    // ---- sessions ----

    internal async Task AttachAsync(PeerSession session, CancellationToken cancellationToken)
    {
        var options = Engine.Options;
        if (_roster.BeginAttach(session, options) is { } refused)
        {
            bool all = refused == RefusalReason.PeerLimit;
            Engine.Refusals.Record(session.RemoteAddress, refused, all
                ? $"peer limit for {Id} reached ({options.MaxPeersPerContent}) and no peer idle"
                : $"{options.MaxPeersPerAddress} peers from {session.RemoteAddress} already have {Id}");
            throw new PeerLimitException(all
                ? $"peer limit for {Id} reached ({options.MaxPeersPerContent})"
                : $"too many connections from {session.RemoteAddress} for {Id} ({options.MaxPeersPerAddress})");
        }
        try
        {
            await AttachCoreAsync(session, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _roster.EndAttach();
        }
    }

    private async Task AttachCoreAsync(PeerSession session, CancellationToken cancellationToken)
    {
        var content = Content;
        byte[]? snapshot = content?.Verified.ToBytes();
        await session.GreetAsync(content, snapshot, cancellationToken).ConfigureAwait(false);
        List<int> missed = [];
        PeerSession? replaced;
        List<PeerSession> others;
        lock (_roster.Sync)
        {
            replaced = _roster.Add(session, Initiator);
            others = [.. _roster.Sessions.Where(s => s != replaced && s != session)];
            // Pieces verified between the snapshot and now get their have messages here; later ones are broadcast.
            var now = Content;
            if (now != null && snapshot != null)
            {
                var before = Bitfield.FromBytes(snapshot, now.Layout.PieceCount);
                for (int i = 0; i < now.Layout.PieceCount; i++) if (now.Verified[i] && !before[i]) missed.Add(i);
            }
        }
        if (missed.Count > 0) await session.SendHavesAsync(content!, missed, cancellationToken).ConfigureAwait(false);
        if (SealSignature is { } seal) session.Send(new Seal(seal));
        replaced?.Close("replaced by another connection to the same peer");
        PeerExchange.Introduce(session, others);
    }

    private Hash256 Initiator(PeerSession s) => s.Outbound ? Engine.Key.NodeId : s.Peer.NodeId;

    /// <summary>Whether a session with the peer listening at this address exists (so dialling it again would only make a duplicate).</summary>
    internal bool IsConnectedTo(IPEndPoint listenAddress) => _roster.IsConnectedTo(listenAddress);

    internal void OnPeerList(PeerList list)
    {
        if (IsDownloading) _peerExchange.Learn(list);
    }

    /// <summary>Addresses learned from peers (peer exchange) since the last call.</summary>
    internal bool TryTakeLearnedPeer(out IPEndPoint endPoint) => _peerExchange.TryTake(out endPoint);

    internal void Detach(PeerSession session)
    {
        List<PeerSession> others;
        lock (_roster.Sync)
        {
            if (!_roster.Remove(session)) return;
            session.State.Detached = true;
            Download.Detach(session.State);
            others = [.. _roster.Sessions];
        }
        Logger.LogDebug("peer {Peer} left {Id}: {Reason}", session, Id, session.CloseReason);
        if (!session.State.AmChoking) FillFreeSlots();
        foreach (var s in others) Download.Pump(s);
    }

    // ---- upload slots and seed steering ----

    internal void OnInterested(PeerSession session, bool interested)
    {
        bool unchoke;
        lock (_roster.Sync) unchoke = _slots.OnInterested(_roster.Sessions, session.State, interested);
        if (unchoke) session.Signal(MessageKind.Unchoke);
        else if (!interested) FillFreeSlots();
    }

    private void FillFreeSlots()
    {
        List<PeerSession>? unchoke;
        lock (_roster.Sync) unchoke = _slots.FillFree(_roster.Sessions);
        if (unchoke != null) foreach (var s in unchoke) s.Signal(MessageKind.Unchoke);
    }

    private void RunChoker(long now)
    {
        List<(PeerSession Peer, bool Unchoke)> changes;
        lock (_roster.Sync) changes = _slots.Round(_roster.Sessions, seeding: Content is { IsComplete: true } || !IsDownloading, now); // complete, or ingesting from the origin
        foreach (var (peer, unchoke) in changes)
        {
            if (unchoke) peer.Signal(MessageKind.Unchoke);
            else peer.Choke();
        }
    }

    internal bool IsChoking(PeerSession session)
    {
        lock (_roster.Sync) return session.State.AmChoking;
    }

    internal RejectReason? CheckRequest(PeerSession session, Request request)
    {
        var content = Content;
        if (content == null || !content.Layout.IsValidBlock(request.Piece, request.Offset, request.Length)) return RejectReason.Invalid;
        if (!content.Verified[request.Piece]) return RejectReason.NotAvailable;
        return IsChoking(session) ? RejectReason.Choked : null;
    }

    /// <summary>
    /// Called by the upload loop just before a block goes out: false when the seed steers the peer elsewhere. Counts each
    /// piece a complete node starts sending, so pieces in flight count as handed out.
    /// </summary>
    internal bool AllowUpload(PeerSession session, int piece)
    {
        lock (_roster.Sync)
        {
            var content = Content;
            if (content == null || (!content.IsComplete && IsDownloading) || Download.Scheduler is not { } scheduler) return true;
            return _steering.Allow(session.State, piece, scheduler.Picker, content.Verified, _roster.Sessions.Count);
        }
    }

    // ---- live content (served while the ingester still reads the origin) ----

    /// <summary>The ingester stored a piece it read from the origin: announce it as a downloaded one would be.</summary>
    public void OnLocalPiece(int piece)
    {
        var content = Content ?? throw new InvalidOperationException("no content");
        Download.Announce(content, piece, _roster.Snapshot());
    }

    /// <summary>The ingester sealed its live content: record the signature and pass it on.</summary>
    public void OnLocalSeal(byte[] signature, StoredContent sealedContent)
    {
        _live.Record(signature, sealedContent);
        _live.Signal();
        _roster.Broadcast(new Seal(signature));
    }

    internal void OnPieceHashes(PeerSession session, PieceHashes message)
    {
        var content = Content;
        if (content == null)
        {
            lock (_roster.Sync)
            {
                if (Content == null)
                {
                    LiveSeal.Defer(session.State, message.Entries);
                    return;
                }
            }
            content = Content!;
        }
        if (!content.Manifest.IsLive) throw new WireProtocolException("piece hashes for content that is not live");
        if (!LiveSeal.AddPieceHashes(content, message.Entries)) Download.Ban(session.State, "sent a piece hash the ingester did not sign");
    }

    internal void OnSeal(Seal seal)
    {
        // A seal can come before the manifest does (a peer that already holds it sends it right after the handshake):
        // keep it as a candidate then too; TrySeal checks it once the content is complete.
        if (SealSignature != null || Content is { Manifest.IsLive: false } || !_live.AddCandidate(seal.Signature)) return;
        if (Content is { IsComplete: true }) TrySeal();
    }

    /// <summary>With the live content complete, turns it into its sealed entry using a received seal that checks out.</summary>
    private void TrySeal()
    {
        var content = Content;
        if (content == null || !content.IsComplete || SealSignature != null) return;
        if (_live.TrySeal(content, Engine.Store, Logger) is not { } sealedContent) return;
        _roster.Broadcast(new Seal(_live.Signature!));
        Engine.OnSealed(content, sealedContent);
        _live.Signal();
    }

    // ---- housekeeping, once a second ----

    internal void Tick()
    {
        long now = Environment.TickCount64;
        var options = Engine.Options;
        if (now - _lastChoke >= options.ChokeInterval.TotalMilliseconds)
        {
            _lastChoke = now;
            RunChoker(now);
        }
        bool opened;
        lock (_roster.Sync) opened = _slots.Adapt(_roster.Sessions, BytesUploaded, options.UploadRate);
        if (opened) FillFreeSlots();
        List<PeerSession> sessions;
        lock (_roster.Sync)
        {
            sessions = [.. _roster.Sessions];
            foreach (var s in sessions)
            {
                s.State.Tick();
                Download.ExpireRequests(s.State, now);
            }
        }
        foreach (var s in sessions)
        {
            s.Housekeep(now, options);
            Download.Pump(s);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        foreach (var s in _roster.Snapshot()) s.Close("node stopping");
        await Download.StopAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
