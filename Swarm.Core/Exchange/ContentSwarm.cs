using System.Buffers;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Storage;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>
/// Everything a node does for one content: its peer sessions, who has which piece, the pieces being assembled, and the
/// verification of finished pieces. Pieces are assembled in memory, checked against the manifest hash and only then
/// written to the store, announced with have messages and served: an unverified byte never reaches disk or a peer.
/// </summary>
public sealed class ContentSwarm : IAsyncDisposable
{
    private readonly Lock _sync = new();
    private readonly Lock _manifestGate = new();
    private readonly List<PeerSession> _sessions = [];
    private readonly Dictionary<int, PartialPiece> _partials = [];
    private readonly HashSet<int> _verifying = [];
    private TaskCompletionSource<StoredContent> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();
    private StoredContent? _content;
    private PiecePicker? _picker;
    private Channel<PartialPiece>? _verifyQueue;
    private Task[] _verifiers = [];
    private long _lastProgress = Environment.TickCount64;
    private readonly Choker<PeerSession> _choker;
    private long _lastChoke;
    private long _bytesFromPeers, _bytesUploaded, _bytesWasted;
    private int _hashFailures;

    internal ContentSwarm(SwarmEngine engine, ContentId id, StoredContent? content)
    {
        Engine = engine;
        Id = id;
        _choker = new Choker<PeerSession>(engine.Options.UploadSlots, engine.Options.OptimisticSlots, engine.Options.OptimisticInterval);
        if (content != null) SetContent(content);
    }

    public ContentId Id { get; }
    internal SwarmEngine Engine { get; }
    internal ILogger Logger => Engine.Logger;
    public StoredContent? Content => Volatile.Read(ref _content);
    public bool IsDownloading { get; private set; }
    public Task<StoredContent> Completion => Volatile.Read(ref _done).Task;
    public long BytesFromPeers => Interlocked.Read(ref _bytesFromPeers);
    public long BytesUploaded => Interlocked.Read(ref _bytesUploaded);
    public long BytesWasted => Interlocked.Read(ref _bytesWasted);
    public int HashFailures => Volatile.Read(ref _hashFailures);
    /// <summary>Milliseconds (Environment.TickCount64) of the last verified piece or of the start of the download.</summary>
    public long LastProgress => Interlocked.Read(ref _lastProgress);

    public int PeerCount
    {
        get { lock (_sync) return _sessions.Count; }
    }

    /// <summary>Whether some connected peer still wants pieces from this node.</summary>
    public bool HasInterestedPeers
    {
        get { lock (_sync) return _sessions.Any(s => s.PeerInterested); }
    }

    public IReadOnlyList<PeerSession> Sessions
    {
        get { lock (_sync) return [.. _sessions]; }
    }

    /// <summary>A one-line account of the download state, for stall diagnostics.</summary>
    public string Describe()
    {
        lock (_sync)
        {
            var parts = new List<string>
            {
                $"verified {_content?.Verified.Count ?? 0}/{_content?.Layout.PieceCount ?? 0}",
                $"partial [{string.Join(", ", _partials.Values.Select(p => $"{p.Index}:{p.ReceivedCount}/{p.Blocks.Length}{(p.ExclusiveOwner != null ? " own" : "")} req {p.Blocks.Count(b => b.First != null)}"))}]",
                $"verifying {_verifying.Count}",
            };
            foreach (var s in _sessions)
                parts.Add($"peer {s.Address}: {(s.PeerChoking ? "choked" : "unchoked")}{(s.AmInterested ? " interested" : "")}{(s.OnParole ? " parole" : "")} out {s.Outstanding.Count} depth {s.Depth} seed {s.IsSeed}");
            return string.Join("; ", parts);
        }
    }

    /// <summary>Missing pieces that every connected peer has answered "not available" (at most <paramref name="max"/>).</summary>
    public List<int> PiecesNoPeerServes(int max = 10)
    {
        lock (_sync)
        {
            var result = new List<int>();
            if (_content == null || _sessions.Count == 0) return result;
            for (int i = 0; i < _content.Layout.PieceCount && result.Count < max; i++)
                if (!_content.Verified[i] && _sessions.All(s => s.NotHeld != null && s.NotHeld.Contains(i))) result.Add(i);
            return result;
        }
    }

    internal void RecordUpload(int bytes)
    {
        Interlocked.Add(ref _bytesUploaded, bytes);
        Engine.CountUploaded(bytes);
    }

    /// <summary>Starts downloading: verification workers run, and sessions start requesting as soon as the manifest is known.</summary>
    internal void StartDownload()
    {
        List<PeerSession> interested = [];
        List<PeerSession> sessions;
        lock (_sync)
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
            if (_verifyQueue == null)
            {
                _verifyQueue = Channel.CreateUnbounded<PartialPiece>(new UnboundedChannelOptions { SingleWriter = false });
                int workers = Math.Clamp(Environment.ProcessorCount, 1, 4);
                _verifiers = Enumerable.Range(0, workers).Select(_ => Task.Run(VerifyLoopAsync)).ToArray();
            }
            // Peers connected while this node was complete: want from them what was lost.
            foreach (var s in _sessions) if (UpdateInterest(s)) interested.Add(s);
            sessions = [.. _sessions];
        }
        foreach (var s in interested) s.Connection.PostSignal(MessageKind.Interested);
        foreach (var s in sessions) Pump(s);
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
            "it is no longer served and is fetched again from peers (by the node's repair, or the next 'swarm get' of it)", piece, Id.ToUri(), content.DataPath);
        Engine.OnPieceRotten(content, piece);
    }

    internal void Fail(Exception error)
    {
        if (_done.TrySetException(error)) Logger.LogDebug(error, "download of {Id} failed", Id);
    }

    private void SetContent(StoredContent content)
    {
        content.PieceRotten += OnPieceRotten;
        _content = content;
        _picker = new PiecePicker(content.Layout.PieceCount);
    }

    // ---- session lifecycle ----

    private int _attaching;

    /// <summary>
    /// Under the lock: room for one more session, within the content's peer limit and the per-address cap. At a limit, the
    /// session idle longest (no block either way for <see cref="EngineOptions.IdleEviction"/>) gives its slot up; null
    /// when there is room, else why not.
    /// </summary>
    private RefusalReason? TryMakeRoom(PeerSession session)
    {
        var options = Engine.Options;
        var address = session.Connection.RemoteEndPoint.Address;
        bool capAddress = !(options.LoopbackAsHosts && System.Net.IPAddress.IsLoopback(address));
        int live = _attaching, fromAddress = 0;
        foreach (var s in _sessions)
        {
            if (s.GivingUpSlot) continue;
            live++;
            if (s.Connection.RemoteEndPoint.Address.Equals(address)) fromAddress++;
        }
        if (capAddress && fromAddress >= options.MaxPeersPerAddress)
        {
            if (!PeerSession.GiveUpIdlest(_sessions.Where(s => s.Connection.RemoteEndPoint.Address.Equals(address)), options.IdleEviction))
                return RefusalReason.PeersPerAddress;
            live--;
        }
        if (live >= options.MaxPeersPerContent && !PeerSession.GiveUpIdlest(_sessions, options.IdleEviction)) return RefusalReason.PeerLimit;
        return null;
    }

    internal async Task AttachAsync(PeerSession session, CancellationToken cancellationToken)
    {
        lock (_sync)
        {
            if (TryMakeRoom(session) is { } refused)
            {
                Engine.Refusals.Record(session.Connection.RemoteEndPoint.Address, refused, refused == RefusalReason.PeerLimit
                    ? $"peer limit for {Id} reached ({Engine.Options.MaxPeersPerContent}) and no peer idle"
                    : $"{Engine.Options.MaxPeersPerAddress} peers from {session.Connection.RemoteEndPoint.Address} already have {Id}");
                throw new PeerLimitException(refused == RefusalReason.PeerLimit
                    ? $"peer limit for {Id} reached ({Engine.Options.MaxPeersPerContent})"
                    : $"too many connections from {session.Connection.RemoteEndPoint.Address} for {Id} ({Engine.Options.MaxPeersPerAddress})");
            }
            _attaching++;
        }
        try
        {
            await AttachCoreAsync(session, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            lock (_sync) _attaching--;
        }
    }

    private async Task AttachCoreAsync(PeerSession session, CancellationToken cancellationToken)
    {
        var content = Content;
        byte[]? snapshot = content?.Verified.ToBytes();
        if (content is { Manifest.IsLive: true } && snapshot != null)
            foreach (var batch in SignedHashes(content, Bitfield.FromBytes(snapshot, content.Layout.PieceCount)))
                await session.Connection.SendAsync(batch, cancellationToken).ConfigureAwait(false);
        if (content == null) await session.Connection.SendSignalAsync(MessageKind.HaveNone, cancellationToken).ConfigureAwait(false);
        else if (content.IsComplete) await session.Connection.SendSignalAsync(MessageKind.HaveAll, cancellationToken).ConfigureAwait(false);
        else if (content.Verified.IsEmpty) await session.Connection.SendSignalAsync(MessageKind.HaveNone, cancellationToken).ConfigureAwait(false);
        else await session.Connection.SendAsync(new BitfieldMessage(snapshot!), cancellationToken).ConfigureAwait(false);

        if (content == null)
        {
            session.HashesRequested = true; // the one time a Hashes frame (up to 8 MiB) is expected from this peer
            await session.Connection.SendSignalAsync(MessageKind.HashesRequest, cancellationToken).ConfigureAwait(false);
        }
        List<int> missed = [];
        PeerSession? replaced = null;
        List<PeerSession> others;
        lock (_sync)
        {
            var existing = _sessions.FirstOrDefault(s => s.Peer.NodeId == session.Peer.NodeId);
            if (existing != null)
            {
                // Two connections to one peer (both dialled, or dialled twice): both ends keep the one whose dialler has
                // the lower node id, so they agree without talking.
                if (Initiator(existing) <= Initiator(session)) throw new DuplicateConnectionException("already connected to this peer");
                replaced = existing;
            }
            others = [.. _sessions.Where(s => s != replaced)];
            _sessions.Add(session);
            // Pieces verified between the snapshot and now get their have messages here; later ones are broadcast.
            var now = Content;
            if (now != null && snapshot != null)
            {
                var before = Bitfield.FromBytes(snapshot, now.Layout.PieceCount);
                for (int i = 0; i < now.Layout.PieceCount; i++) if (now.Verified[i] && !before[i]) missed.Add(i);
            }
        }
        foreach (int piece in missed)
        {
            if (content!.Manifest.IsLive) await session.Connection.SendAsync(new PieceHashes([SignedHash(content, piece)]), cancellationToken).ConfigureAwait(false);
            await session.Connection.SendAsync(new Have(piece), cancellationToken).ConfigureAwait(false);
        }
        if (SealSignature is { } seal) session.Connection.Post(new Seal(seal));
        replaced?.Close("replaced by another connection to the same peer");
        ExchangePeers(session, others);
    }

    private Hash256 Initiator(PeerSession s) => s.Outbound ? Engine.Key.NodeId : s.Peer.NodeId;

    /// <summary>Whether a session with the peer listening at this address exists (so dialling it again would only make a duplicate).</summary>
    internal bool IsConnectedTo(System.Net.IPEndPoint listenAddress)
    {
        lock (_sync) return _sessions.Any(s => s.Address.Equals(listenAddress));
    }

    /// <summary>Peer exchange: the newcomer learns where our other peers listen, and they learn about it.</summary>
    private static void ExchangePeers(PeerSession session, List<PeerSession> others)
    {
        var known = others.Where(s => s.Peer.ListenPort > 0).Select(s => s.Address).Take(WireLimits.MaxPeerListEntries).ToList();
        if (known.Count > 0) session.Connection.Post(new PeerList(known));
        if (session.Peer.ListenPort <= 0) return;
        var announce = new PeerList([session.Address]);
        foreach (var other in others) other.Connection.Post(announce);
    }

    private readonly System.Collections.Concurrent.ConcurrentQueue<System.Net.IPEndPoint> _learned = new();
    private const int MaxLearned = 256;

    internal void OnPeerList(PeerList list)
    {
        if (!IsDownloading) return;
        foreach (var endPoint in list.Peers)
        {
            if (_learned.Count >= MaxLearned) return;
            _learned.Enqueue(endPoint);
        }
    }

    /// <summary>Addresses learned from peers (peer exchange) since the last call.</summary>
    internal bool TryTakeLearnedPeer(out System.Net.IPEndPoint endPoint) => _learned.TryDequeue(out endPoint!);

    internal void Detach(PeerSession session)
    {
        List<PeerSession> others;
        lock (_sync)
        {
            if (!_sessions.Remove(session)) return;
            session.Detached = true;
            if (_picker != null)
            {
                if (session.IsSeed) _picker.RemoveSeed();
                else if (session.Has != null) _picker.RemovePeer(session.Has);
            }
            foreach (long key in session.Outstanding.Keys) ReleaseSlot(key, session);
            session.Outstanding.Clear();
            foreach (var partial in _partials.Values) if (partial.ExclusiveOwner == session) partial.ExclusiveOwner = null;
            others = [.. _sessions];
        }
        Logger.LogDebug("peer {Peer} left {Id}: {Reason}", session, Id, session.CloseReason);
        if (!session.AmChoking) FillFreeSlots();
        foreach (var s in others) Pump(s);
    }

    // ---- availability and interest ----

    internal void OnAvailability(PeerSession session, byte[]? bits, bool seed)
    {
        bool interested;
        lock (_sync)
        {
            if (_content == null)
            {
                session.PendingBitfield = bits;
                session.IsSeed = seed;
                return;
            }
            ApplyAvailability(session, bits, seed);
            interested = UpdateInterest(session);
        }
        if (interested) session.Connection.PostSignal(MessageKind.Interested);
    }

    /// <summary>Under the lock, with the layout known.</summary>
    private void ApplyAvailability(PeerSession session, byte[]? bits, bool seed)
    {
        int count = _content!.Layout.PieceCount;
        if (seed)
        {
            session.IsSeed = true;
            _picker!.AddSeed();
        }
        else
        {
            try
            {
                session.Has = bits == null ? new Bitfield(count) : Bitfield.FromBytes(bits, count);
            }
            catch (InvalidDataException e)
            {
                throw new WireProtocolException("bad bitfield: " + e.Message);
            }
            _picker!.AddPeer(session.Has);
        }
        if (session.PendingHaves != null)
        {
            foreach (int piece in session.PendingHaves) AddHave(session, piece);
            session.PendingHaves = null;
        }
        if (_content.Manifest.IsLive)
        {
            // Every piece a peer offers of a live content must come with its signed hash first.
            for (int i = 0; i < count; i++)
                if (session.PeerHas(i) && !_content.Manifest.HasPieceHash(i)) throw new WireProtocolException($"offers piece {i} of a live content without its signed hash");
        }
    }

    internal void OnHave(PeerSession session, int piece)
    {
        bool interested;
        lock (_sync)
        {
            if (_content == null)
            {
                session.PendingHaves ??= [];
                if (session.PendingHaves.Count > WireLimits.MaxBitfieldBytes * 8) throw new WireProtocolException("too many have messages");
                session.PendingHaves.Add(piece);
                return;
            }
            AddHave(session, piece);
            interested = UpdateInterest(session);
        }
        if (interested) session.Connection.PostSignal(MessageKind.Interested);
    }

    private void AddHave(PeerSession session, int piece)
    {
        if ((uint)piece >= (uint)_content!.Layout.PieceCount) throw new WireProtocolException($"have for piece {piece} of {_content.Layout.PieceCount}");
        if (_content.Manifest.IsLive && !_content.Manifest.HasPieceHash(piece)) throw new WireProtocolException($"have for piece {piece} of a live content without its signed hash");
        if (session.IsSeed) return;
        session.Has ??= new Bitfield(_content.Layout.PieceCount);
        if (session.Has.Set(piece)) _picker!.AddHave(piece);
    }

    /// <summary>Under the lock. Returns true when we just became interested (the caller sends Interested).</summary>
    private bool UpdateInterest(PeerSession session)
    {
        if (session.AmInterested || !IsDownloading || _content == null || _content.IsComplete) return false;
        var verified = _content.Verified;
        bool wants = false;
        for (int i = 0; i < verified.Length && !wants; i++) wants = !verified[i] && session.PeerHas(i);
        if (wants) session.AmInterested = true;
        return wants;
    }

    /// <summary>Returns true when the peer was choked and is now unchoked (the caller sends Unchoke).</summary>
    internal bool OnInterested(PeerSession session, bool interested)
    {
        lock (_sync)
        {
            session.PeerInterested = interested;
            // A free slot is given at once; otherwise the peer waits for the next choker round.
            if (interested && session.AmChoking && _sessions.Count(s => !s.AmChoking && s.PeerInterested) < _choker.Slots)
            {
                session.AmChoking = false;
                return true;
            }
        }
        if (!interested) FillFreeSlots();
        return false;
    }

    /// <summary>
    /// A slot freed between choker rounds (a peer lost interest, left, or we completed) goes at once to the best waiting
    /// peer, instead of idling until the next round.
    /// </summary>
    private void FillFreeSlots()
    {
        List<PeerSession> unchoke = [];
        lock (_sync)
        {
            int used = _sessions.Count(s => !s.AmChoking && s.PeerInterested);
            if (used >= _choker.Slots) return;
            foreach (var s in _sessions.Where(s => s.AmChoking && s.PeerInterested).OrderByDescending(Need).Take(_choker.Slots - used))
            {
                s.AmChoking = false;
                unchoke.Add(s);
            }
        }
        foreach (var s in unchoke) s.Connection.PostSignal(MessageKind.Unchoke);
    }

    internal void OnChoke(PeerSession session, bool choking)
    {
        lock (_sync) session.PeerChoking = choking;
    }

    internal bool IsChoking(PeerSession session)
    {
        lock (_sync) return session.AmChoking;
    }

    /// <summary>
    /// A choker round: while downloading, reward the peers that upload to us fastest (tit for tat); when complete, serve
    /// the peers that have had the least from us (round robin), so every peer gets served.
    /// </summary>
    private void RunChoker(long now)
    {
        List<(PeerSession Peer, bool Unchoke)> changes = [];
        lock (_sync)
        {
            bool seeding = _content is { IsComplete: true } || !IsDownloading; // complete, or ingesting from the origin
            var interested = _sessions.Where(s => s.PeerInterested).ToList();
            var chosen = _choker.Decide(interested, seeding ? s => -(double)s.BytesUploaded : s => s.DownloadRate, now, Need);
            foreach (var s in _sessions)
            {
                bool unchoke = chosen.Contains(s);
                if (unchoke == !s.AmChoking) continue;
                s.AmChoking = !unchoke;
                changes.Add((s, unchoke));
            }
        }
        foreach (var (peer, unchoke) in changes)
        {
            peer.Connection.PostSignal(unchoke ? MessageKind.Unchoke : MessageKind.Choke);
            if (!unchoke) peer.RejectQueued(RejectReason.Choked);
        }
    }

    /// <summary>How needy a peer is: the fewer pieces it holds, the higher. Free and extra slots go to the neediest.</summary>
    private double Need(PeerSession s) => s.IsSeed ? double.MinValue : -(s.Has?.Count ?? 0);

    private long _uploadedAtLastTick;

    /// <summary>
    /// Rate-based slots (as libtorrent's rate-based choker): with an upload limit set, 4 slots can leave capacity unused,
    /// because each unchoked peer's own download limit caps what it takes. While this node uploads below 90% of its limit
    /// and interested peers wait, one more slot opens each second (up to 16 more); slots close again when nobody waits.
    /// </summary>
    private void AdaptSlots()
    {
        long uploaded = BytesUploaded;
        long delta = uploaded - _uploadedAtLastTick;
        _uploadedAtLastTick = uploaded;
        long limit = Engine.Options.UploadRate;
        if (limit <= 0) return;
        bool waiting;
        lock (_sync) waiting = _sessions.Any(s => s.AmChoking && s.PeerInterested);
        if (delta < limit * 0.9 && waiting && _choker.ExtraSlots < MaxExtraSlots)
        {
            _choker.ExtraSlots++;
            FillFreeSlots();
        }
        else if (!waiting && _choker.ExtraSlots > 0 && delta < limit * 0.5)
        {
            _choker.ExtraSlots--;
        }
    }

    private const int MaxExtraSlots = 16;

    internal RejectReason? CheckRequest(PeerSession session, Request request)
    {
        var content = Content;
        if (content == null || !content.Layout.IsValidBlock(request.Piece, request.Offset, request.Length)) return RejectReason.Invalid;
        if (!content.Verified[request.Piece]) return RejectReason.NotAvailable;
        lock (_sync)
        {
            if (session.AmChoking) return RejectReason.Choked;
        }
        return null;
    }

    /// <summary>
    /// Called by the upload loop just before a block goes out: false when the seed steers the peer elsewhere. Counts each
    /// piece a complete node starts sending, so pieces in flight count as handed out.
    /// </summary>
    internal bool AllowUpload(PeerSession session, int piece)
    {
        lock (_sync)
        {
            if (_content == null || (!_content.IsComplete && IsDownloading) || _picker == null) return true;
            if (session.Serving.Contains(piece)) return true;
            _sent ??= new int[_picker.PieceCount];
            if (SteerElsewhere(session, piece)) return false;
            session.Serving.Add(piece);
            _sent[piece]++;
            return true;
        }
    }

    /// <summary>
    /// Seed steering (a light form of BitTorrent super-seeding): a complete node declines to send a piece that at least two
    /// of its peers already hold while the requester still lacks a rarer one, so its upload goes to pieces nobody has yet
    /// and the peers trade the rest among themselves. Under the lock.
    /// </summary>
    private bool SteerElsewhere(PeerSession session, int piece)
    {
        if (_picker == null || _sent == null || _sessions.Count < 3) return false;
        int held = _picker.Availability(piece);
        int score = held + _sent[piece];
        if (score == 0) return false;
        var held_ = _content!.Verified; // an ingester holds only the pieces read so far
        for (int i = 0; i < _sent.Length; i++)
            if (held_[i] && _picker.Availability(i) + _sent[i] < score && !session.PeerHas(i)) return true;
        // Nothing rarer to offer: if another peer holds it, send the requester to them once; if it asks again after
        // its refusal window (it could not get the piece elsewhere), serve it.
        return held >= 1 && session.SteeredAway.Add(piece);
    }

    private int[]? _sent;

    /// <summary>How many peers each piece was handed to by this complete node (seed steering's count).</summary>
    internal int[] SentCounts
    {
        get { lock (_sync) return _sent?.ToArray() ?? []; }
    }

    // ---- manifest ----

    internal void OnHashes(PeerSession session, Hashes hashes)
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
        if (manifest.Id != Id || (!manifest.IsLive && !manifest.VerifySignature(hashes.Signature)))
        {
            BanAndClose(session, manifest.Id != Id ? "sent a manifest that does not match the content id" : "sent a manifest with a bad signature");
            return;
        }
        StoredContent content;
        List<(PeerSession, bool)> interest = [];
        lock (_manifestGate) // several peers may answer at once: install the manifest once
        {
            if (Content != null) return;
            try
            {
                content = Engine.Store.OpenOrCreate(manifest, hashes.Signature);
                content.AcquireWriter();
            }
            catch (IOException e)
            {
                Fail(e);
                return;
            }
            List<PeerSession> liars = [];
            lock (_sync)
            {
                SetContent(content);
            foreach (var s in _sessions)
            {
                if (s.PendingPieceHashes != null)
                {
                    if (!AddPieceHashes(content, s.PendingPieceHashes)) liars.Add(s);
                    s.PendingPieceHashes = null;
                }
            }
            foreach (var s in _sessions)
            {
                if (liars.Contains(s)) continue;
                if (s.PendingBitfield != null || s.IsSeed || s.PendingHaves != null)
                {
                    bool seed = s.IsSeed;
                    s.IsSeed = false;
                    ApplyAvailability(s, s.PendingBitfield, seed);
                    s.PendingBitfield = null;
                }
                interest.Add((s, UpdateInterest(s)));
            }
            }
            foreach (var liar in liars) BanAndClose(liar, "sent a piece hash the ingester did not sign");
        }
        Logger.LogInformation("manifest for {Id}: {Length} bytes in {Pieces} pieces of {PieceSize}", Id, manifest.Length, manifest.PieceCount, manifest.PieceSize);
        if (content.IsComplete) _done.TrySetResult(content);
        foreach (var (s, interested) in interest)
        {
            if (interested) s.Connection.PostSignal(MessageKind.Interested);
            Pump(s);
        }
    }

    // ---- requests and blocks ----

    /// <summary>Sends as many requests to the peer as its pipeline depth allows.</summary>
    internal void Pump(PeerSession session)
    {
        List<Request>? requests = null;
        lock (_sync)
        {
            if (!IsDownloading || _content == null || _content.IsComplete || session.PeerChoking || !session.AmInterested || session.Detached) return;
            int want = session.Depth - session.Outstanding.Count;
            if (want <= 0) return;
            requests = [];
            PickBlocks(session, want, requests);
        }
        foreach (var r in requests) session.Connection.Post(r);
    }

    /// <summary>Under the lock: finish started pieces first, then start new ones (picker), then end game duplicates.</summary>
    private void PickBlocks(PeerSession session, int want, List<Request> output)
    {
        var layout = _content!.Layout;
        var verified = _content.Verified;
        long now = Environment.TickCount64;
        foreach (var partial in _partials.Values)
        {
            if (!session.PeerHas(partial.Index) || !MayJoin(session, partial)) continue;
            RequestFree(session, partial, want, output, now);
            if (output.Count >= want) return;
        }
        while (output.Count < want)
        {
            int piece = _picker!.Pick(session.PeerHas, i => !verified[i] && !_partials.ContainsKey(i) && !_verifying.Contains(i), verified.Count);
            if (piece < 0) break;
            int length = layout.PieceLength(piece);
            // Memory for assembling pieces is bounded across all downloads; a swarm holding no buffer at all may always
            // start one piece, so no download starves.
            bool holdsNone = _partials.Count == 0 && _verifying.Count == 0;
            if (holdsNone) Engine.ForceReserveBuffer(length);
            else if (!Engine.TryReserveBuffer(length)) return;
            var partial = new PartialPiece(piece, length, layout.BlockCount(piece)) { ExclusiveOwner = session.OnParole ? session : null };
            _partials.Add(piece, partial);
            RequestFree(session, partial, want, output, now);
        }
        if (output.Count >= want || verified.Count + _partials.Count + _verifying.Count < layout.PieceCount) return;
        // End game: every missing piece is in flight. Ask this peer too for blocks others have not delivered yet (two copies at most).
        foreach (var partial in _partials.Values)
        {
            if (!session.PeerHas(partial.Index) || !MayJoin(session, partial)) continue;
            for (int b = 0; b < partial.Blocks.Length && output.Count < want; b++)
            {
                ref var slot = ref partial.Blocks[b];
                if (slot.Received || slot.First == null || slot.First == session || slot.Second != null) continue;
                slot.Second = session;
                AddRequest(session, partial.Index, b, layout, output, now);
            }
        }
    }

    /// <summary>
    /// Parole (after a piece from several peers failed its hash and we cannot tell who lied): a peer on parole only gets
    /// whole pieces of its own, and nobody joins those, so the next failure names the liar.
    /// </summary>
    private bool MayJoin(PeerSession session, PartialPiece partial)
    {
        if (partial.ExclusiveOwner == session) return true;
        if (partial.ExclusiveOwner != null) return false;
        if (!session.OnParole) return true;
        // A peer on parole may take over a piece that no other connected peer is working on.
        foreach (var c in partial.Contributors) if (c != session && _sessions.Contains(c)) return false;
        foreach (var slot in partial.Blocks)
            if ((slot.First != null && slot.First != session) || (slot.Second != null && slot.Second != session)) return false;
        partial.ExclusiveOwner = session;
        return true;
    }

    private void RequestFree(PeerSession session, PartialPiece partial, int want, List<Request> output, long now)
    {
        var layout = _content!.Layout;
        for (int b = 0; b < partial.Blocks.Length && output.Count < want; b++)
        {
            ref var slot = ref partial.Blocks[b];
            if (slot.Received || slot.First != null) continue;
            slot.First = session;
            AddRequest(session, partial.Index, b, layout, output, now);
        }
    }

    private static void AddRequest(PeerSession session, int piece, int block, PieceLayout layout, List<Request> output, long now)
    {
        int offset = block * PieceLayout.BlockSize;
        session.Outstanding[PeerSession.BlockKey(piece, offset)] = now;
        session.LastRequested = now;
        output.Add(new Request(piece, offset, layout.BlockLength(piece, block)));
    }

    /// <summary>Under the lock: forgets that <paramref name="session"/> was asked for a block, so another peer can be.</summary>
    private void ReleaseSlot(long key, PeerSession session)
    {
        int piece = (int)(key >> 32), offset = (int)(uint)key;
        if (!_partials.TryGetValue(piece, out var partial)) return;
        ref var slot = ref partial.Blocks[offset / PieceLayout.BlockSize];
        if (slot.First == session) { slot.First = slot.Second; slot.Second = null; }
        else if (slot.Second == session) slot.Second = null;
    }

    /// <summary>
    /// A block arrived: copy it into its piece if we asked this peer for it. Returns cancels to send to the other peer
    /// that was asked for the same block in end game.
    /// </summary>
    internal List<(PeerSession, Cancel)>? OnBlock(PeerSession session, BlockHeader header, System.Buffers.ReadOnlySequence<byte> payload)
    {
        int length = (int)payload.Length;
        PartialPiece? complete = null;
        List<(PeerSession, Cancel)>? cancels = null;
        lock (_sync)
        {
            var content = _content;
            if (content == null || !content.Layout.IsValidBlock(header.Piece, header.Offset, length))
                throw new WireProtocolException($"block {header.Piece}/{header.Offset} of {length} bytes does not fit the content");
            long key = PeerSession.BlockKey(header.Piece, header.Offset);
            if (!session.Outstanding.Remove(key) || !_partials.TryGetValue(header.Piece, out var partial))
            {
                _bytesWasted += length; // cancelled, timed out or already done: not an error
                return null;
            }
            session.RecordBlock(length);
            ref var slot = ref partial.Blocks[header.Offset / PieceLayout.BlockSize];
            if (slot.Received)
            {
                _bytesWasted += length;
                return null;
            }
            payload.CopyTo(partial.Buffer.Span.Slice(header.Offset, length));
            slot.Received = true;
            slot.From = session;
            partial.ReceivedCount++;
            partial.Contributors.Add(session);
            var other = slot.First == session ? slot.Second : slot.First;
            if (other != null && other != session && other.Outstanding.Remove(key))
                (cancels ??= []).Add((other, new Cancel(header.Piece, header.Offset, length)));
            slot.First = slot.Second = null;
            _bytesFromPeers += length;
            Engine.CountFromPeers(length);
            if (partial.ReceivedCount == partial.Blocks.Length)
            {
                _partials.Remove(header.Piece);
                _verifying.Add(header.Piece);
                complete = partial;
            }
        }
        if (complete != null) _verifyQueue!.Writer.TryWrite(complete);
        return cancels;
    }

    internal void OnReject(PeerSession session, Reject reject)
    {
        if (reject.Piece < 0) return; // a refused hashes request: another peer will answer it
        lock (_sync)
        {
            long key = PeerSession.BlockKey(reject.Piece, reject.Offset);
            if (session.Outstanding.Remove(key)) ReleaseSlot(key, session);
            if (reject.Reason is RejectReason.Elsewhere or RejectReason.NotAvailable && _content != null && (uint)reject.Piece < (uint)_content.Layout.PieceCount)
            {
                // Ask others for this piece for a while; other blocks of it that are in flight with this peer go too.
                (session.Refused ??= [])[reject.Piece] = Environment.TickCount64 + 3000;
                if (reject.Reason == RejectReason.NotAvailable && session.NotHeld is not { Count: >= 4096 }) (session.NotHeld ??= []).Add(reject.Piece);
                var same = session.Outstanding.Keys.Where(k => (int)(k >> 32) == reject.Piece).ToList();
                foreach (long k in same)
                {
                    session.Outstanding.Remove(k);
                    ReleaseSlot(k, session);
                    session.Connection.Post(new Cancel(reject.Piece, (int)(uint)k, _content.Layout.BlockLength(reject.Piece, (int)(uint)k / PieceLayout.BlockSize)));
                }
            }
        }
    }

    // ---- verification ----

    private async Task VerifyLoopAsync()
    {
        var reader = _verifyQueue!.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_stop.Token).ConfigureAwait(false))
            {
                while (reader.TryRead(out var piece)) Verify(piece);
            }
        }
        catch (OperationCanceledException) { }
    }

    private void Verify(PartialPiece piece)
    {
        var content = _content!;
        if (!content.Manifest.HasPieceHash(piece.Index))
        {
            // Cannot happen with honest peers (a hash comes before its have); without it nobody can be blamed.
            lock (_sync) _verifying.Remove(piece.Index);
            piece.Return(Engine);
            Logger.LogWarning("piece {Piece} of live {Id} arrived before its signed hash; dropped", piece.Index, Id);
            return;
        }
        bool ok;
        try
        {
            ok = content.TryCommitPiece(piece.Index, piece.Buffer.Span[..piece.Length]);
        }
        catch (IOException e)
        {
            piece.Return(Engine);
            Fail(new IOException($"cannot write {Id} to {content.Directory}: {e.Message}", e));
            return;
        }
        List<PeerSession> sessions;
        PeerSession? culprit = null;
        List<PeerSession>? liars = null;
        // Smart ban: remember who sent which bytes of a failed piece from several peers; once the piece verifies, the
        // senders of blocks that differ from the good data are the liars.
        bool suspected;
        lock (_sync) suspected = _suspects.ContainsKey(piece.Index);
        var blocks = (ok && suspected) || (!ok && piece.Contributors.Count > 1) ? BlockDigests(piece) : null; // only in these rare cases
        lock (_sync)
        {
            _verifying.Remove(piece.Index);
            sessions = [.. _sessions];
            if (ok)
            {
                Interlocked.Exchange(ref _lastProgress, Environment.TickCount64);
                if (piece.Contributors.Count == 1) piece.Contributors.First().OnParole = false;
                if (_suspects.Remove(piece.Index, out var earlier))
                    liars = [.. earlier.Where(e => !blocks![e.Block].Hash.SequenceEqual(e.Hash)).Select(e => e.From).Distinct()];
            }
            else if (piece.Contributors.Count == 1)
            {
                culprit = piece.Contributors.First();
            }
            else
            {
                foreach (var suspect in piece.Contributors) suspect.OnParole = true;
                var list = _suspects.TryGetValue(piece.Index, out var known) ? known : _suspects[piece.Index] = [];
                list.AddRange(blocks!.Where(b => b.From != null).Select(b => (b.From!, b.Block, b.Hash)));
            }
        }
        piece.Return(Engine);
        if (liars != null)
            foreach (var liar in liars) BanAndClose(liar, $"sent a block of piece {piece.Index} that differs from the verified data");
        if (ok)
        {
            AnnouncePiece(content, piece.Index, sessions);
            if (content.IsComplete) Complete(content, sessions);
        }
        else
        {
            Interlocked.Increment(ref _hashFailures);
            Engine.CountPieceFailed();
            if (culprit != null) BanAndClose(culprit, $"sent piece {piece.Index}, which failed its SHA-256 check");
            else Logger.LogWarning("piece {Piece} of {Id} from {Count} peers failed its SHA-256 check; they are on parole until one is caught", piece.Index, Id, piece.Contributors.Count);
        }
        foreach (var s in sessions) Pump(s);
    }

    /// <summary>Blocks of failed multi-peer pieces: who sent them and their SHA-256, until the piece verifies.</summary>
    private readonly Dictionary<int, List<(PeerSession From, int Block, byte[] Hash)>> _suspects = [];

    private static List<(PeerSession? From, int Block, byte[] Hash)> BlockDigests(PartialPiece piece)
    {
        var result = new List<(PeerSession?, int, byte[])>(piece.Blocks.Length);
        var data = piece.Buffer.Span[..piece.Length];
        for (int b = 0; b < piece.Blocks.Length; b++)
        {
            int offset = b * PieceLayout.BlockSize;
            int length = Math.Min(PieceLayout.BlockSize, piece.Length - offset);
            result.Add((piece.Blocks[b].From, b, System.Security.Cryptography.SHA256.HashData(data.Slice(offset, length))));
        }
        return result;
    }

    private void Complete(StoredContent content, List<PeerSession> sessions)
    {
        lock (_sync)
        {
            IsDownloading = false;
            foreach (var s in sessions) s.AmInterested = false;
        }
        foreach (var s in sessions) s.Connection.PostSignal(MessageKind.NotInterested);
        RunChoker(Environment.TickCount64); // now a seed: rank by round robin instead of by what peers give us
        Logger.LogInformation("{Id} complete and verified", Id);
        if (content.Manifest.IsLive) TrySeal();
        _done.TrySetResult(content);
    }

    // ---- live content (served while the ingester still reads the origin) ----

    private const int MaxSealCandidates = 4;
    private readonly List<byte[]> _sealCandidates = [];
    private byte[]? _sealSignature;

    /// <summary>The ingester's signature over the sealed manifest, once checked against the complete live content.</summary>
    public byte[]? SealSignature => Volatile.Read(ref _sealSignature);

    private readonly TaskCompletionSource _sealedSignal = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when this live content is sealed.</summary>
    public Task SealedTask => _sealedSignal.Task;

    /// <summary>The sealed (ordinary) entry made from this live content, once sealed.</summary>
    public StoredContent? Sealed { get; private set; }

    private static SignedPieceHash SignedHash(StoredContent content, int piece) =>
        new(piece, content.Manifest.PieceHash(piece).ToArray(), content.Manifest.PieceSignature(piece).ToArray());

    private static IEnumerable<PieceHashes> SignedHashes(StoredContent content, Bitfield held)
    {
        var batch = new List<SignedPieceHash>();
        for (int i = 0; i < held.Length; i++)
        {
            if (!held[i]) continue;
            batch.Add(SignedHash(content, i));
            if (batch.Count == WireLimits.MaxPieceHashEntries)
            {
                yield return new PieceHashes(batch);
                batch = [];
            }
        }
        if (batch.Count > 0) yield return new PieceHashes(batch);
    }

    /// <summary>Tells every peer about a newly verified piece (with its signed hash for live content) and the DHT.</summary>
    private void AnnouncePiece(StoredContent content, int piece, List<PeerSession> sessions)
    {
        if (content.Manifest.IsLive)
        {
            var hash = new PieceHashes([SignedHash(content, piece)]);
            foreach (var s in sessions) s.Connection.Post(hash);
        }
        foreach (var s in sessions) s.Connection.Post(new Have(piece));
        Engine.OnPieceVerified(content, piece);
    }

    /// <summary>The ingester stored a piece it read from the origin: announce it as a downloaded one would be.</summary>
    public void OnLocalPiece(int piece)
    {
        var content = Content ?? throw new InvalidOperationException("no content");
        List<PeerSession> sessions;
        lock (_sync) sessions = [.. _sessions];
        AnnouncePiece(content, piece, sessions);
    }

    /// <summary>The ingester sealed its live content: record the signature and pass it on.</summary>
    public void OnLocalSeal(byte[] signature, StoredContent sealedContent)
    {
        Sealed = sealedContent;
        Volatile.Write(ref _sealSignature, signature);
        _sealedSignal.TrySetResult();
        BroadcastSeal(signature);
    }

    private void BroadcastSeal(byte[] signature)
    {
        List<PeerSession> sessions;
        lock (_sync) sessions = [.. _sessions];
        foreach (var s in sessions) s.Connection.Post(new Seal(signature));
    }

    /// <summary>Under no lock. Returns false when an entry is not the ingester's (the sender lies).</summary>
    private static bool AddPieceHashes(StoredContent content, IReadOnlyList<SignedPieceHash> entries)
    {
        foreach (var e in entries)
            if ((uint)e.Piece >= (uint)content.Layout.PieceCount || !content.Manifest.TryAddPieceHash(e.Piece, e.Hash, e.Signature)) return false;
        return true;
    }

    internal void OnPieceHashes(PeerSession session, PieceHashes message)
    {
        var content = Content;
        if (content == null)
        {
            lock (_sync)
            {
                if (Content == null)
                {
                    var pending = session.PendingPieceHashes ??= [];
                    if (pending.Count + message.Entries.Count > WireLimits.MaxBitfieldBytes * 8) throw new WireProtocolException("too many piece hashes before the manifest");
                    pending.AddRange(message.Entries);
                    return;
                }
            }
            content = Content!;
        }
        if (!content.Manifest.IsLive) throw new WireProtocolException("piece hashes for content that is not live");
        if (!AddPieceHashes(content, message.Entries)) BanAndClose(session, "sent a piece hash the ingester did not sign");
    }

    internal void OnSeal(PeerSession session, Seal seal)
    {
        // A seal can come before the manifest does (a peer that already holds it sends it right after the handshake):
        // keep it as a candidate then too; TrySeal checks it once the content is complete.
        var content = Content;
        if (SealSignature != null || content is { Manifest.IsLive: false }) return;
        lock (_sync)
        {
            if (_sealCandidates.Count >= MaxSealCandidates || _sealCandidates.Any(c => c.AsSpan().SequenceEqual(seal.Signature))) return;
            _sealCandidates.Add(seal.Signature);
        }
        if (Content is { IsComplete: true }) TrySeal();
    }

    /// <summary>With the live content complete, turns it into its sealed entry using a received seal that checks out.</summary>
    private void TrySeal()
    {
        var content = Content;
        if (content == null || !content.IsComplete || SealSignature != null) return;
        List<byte[]> candidates;
        lock (_sync) candidates = [.. _sealCandidates];
        foreach (var signature in candidates)
        {
            try
            {
                var sealedContent = Engine.Store.SealLive(content, signature);
                Sealed = sealedContent;
                Volatile.Write(ref _sealSignature, signature);
                Logger.LogInformation("live {Id} sealed as {Final}", Id, sealedContent.Id);
                BroadcastSeal(signature);
                Engine.OnSealed(content, sealedContent);
                _sealedSignal.TrySetResult();
                return;
            }
            catch (InvalidDataException)
            {
                lock (_sync) _sealCandidates.Remove(signature); // not the ingester's
            }
            catch (IOException e)
            {
                Logger.LogWarning("could not seal {Id}: {Error}", Id, e.Message);
                return;
            }
        }
    }

    private void BanAndClose(PeerSession session, string reason)
    {
        lock (_sync)
        {
            // Nothing a liar sent stays in a piece being assembled.
            foreach (var partial in _partials.Values)
            {
                if (!partial.Contributors.Remove(session)) continue;
                for (int b = 0; b < partial.Blocks.Length; b++)
                {
                    ref var slot = ref partial.Blocks[b];
                    if (slot.Received && slot.From == session)
                    {
                        slot = default;
                        partial.ReceivedCount--;
                    }
                }
            }
        }
        Engine.Bans.Ban(session.Peer.NodeId, session.Address, Engine.Options.BanDuration);
        Logger.LogWarning("banned peer {Peer}: {Reason}", session, reason);
        session.Close("banned: " + reason);
    }

    // ---- housekeeping, once a second ----

    internal void Tick()
    {
        long now = Environment.TickCount64;
        var opts = Engine.Options;
        if (now - _lastChoke >= opts.ChokeInterval.TotalMilliseconds)
        {
            _lastChoke = now;
            RunChoker(now);
        }
        AdaptSlots();
        List<PeerSession> sessions;
        lock (_sync)
        {
            sessions = [.. _sessions];
            foreach (var s in sessions)
            {
                s.Tick();
                List<long>? expired = null;
                foreach (var (key, sent) in s.Outstanding)
                    if (now - sent > opts.RequestTimeout.TotalMilliseconds) (expired ??= []).Add(key);
                if (expired == null) continue;
                foreach (long key in expired) { s.Outstanding.Remove(key); ReleaseSlot(key, s); }
                s.Depth = PeerSession.MinDepth; // snubbed: ask little of it until it proves faster
            }
        }
        foreach (var s in sessions)
        {
            if (now - s.Connection.LastReceived > opts.IdleTimeout.TotalMilliseconds) s.Close("idle timeout");
            else if (now - s.Connection.LastSent > opts.KeepAliveInterval.TotalMilliseconds) s.Connection.PostSignal(MessageKind.KeepAlive);
            Pump(s);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        List<PeerSession> sessions;
        lock (_sync) sessions = [.. _sessions];
        foreach (var s in sessions) s.Close("node stopping");
        _verifyQueue?.Writer.TryComplete();
        try { await Task.WhenAll(_verifiers).ConfigureAwait(false); } catch (OperationCanceledException) { }
        lock (_sync)
        {
            foreach (var p in _partials.Values) p.Return(Engine);
            _partials.Clear();
        }
        _done.TrySetCanceled();
        if (_content != null) _content.PieceRotten -= OnPieceRotten;
        _content?.Dispose();
        _stop.Dispose();
    }

    private struct BlockSlot
    {
        public PeerSession? First;
        public PeerSession? Second;
        public PeerSession? From;
        public bool Received;
    }

    private sealed class PartialPiece(int index, int length, int blocks)
    {
        public int Index { get; } = index;
        public int Length { get; } = length;
        public AlignedBuffer Buffer { get; } = AlignedBuffer.Rent(length);
        public BlockSlot[] Blocks { get; } = new BlockSlot[blocks];
        public int ReceivedCount;
        public HashSet<PeerSession> Contributors { get; } = [];
        /// <summary>Set when a peer on parole started the piece: only it may fill it.</summary>
        public PeerSession? ExclusiveOwner { get; set; }
        private int _returned;

        public void Return(SwarmEngine engine)
        {
            if (Interlocked.Exchange(ref _returned, 1) != 0) return;
            AlignedBuffer.Return(Buffer);
            engine.ReleaseBuffer(Length);
        }
    }
}
