using System.Buffers;
using Swarm.Core.Content;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange.Download;

/// <summary>
/// Which blocks of one content to ask which peer for: blocks of started pieces first, then new pieces (the
/// <see cref="PiecePicker"/>: random first, then rarest first), then, in end game (every missing piece in flight), a
/// second copy of blocks another peer has not delivered yet. It keeps the pieces being assembled, the pieces being
/// verified and the per-piece availability, and returns the requests and cancels to send; it sends nothing. Not
/// thread-safe: the swarm calls it under its lock.
/// </summary>
internal sealed class BlockScheduler
{
    /// <summary>How long a peer that declined a piece (not available, or served elsewhere) is not asked for it again.</summary>
    public const int RefusalWindowMs = 3000;
    /// <summary>Pieces a peer answered "not available" are remembered up to this many (for stall diagnostics).</summary>
    private const int MaxNotHeld = 4096;

    private readonly PieceLayout _layout;
    private readonly Bitfield _verified;
    private readonly PieceBufferBudget _buffers;
    private readonly Dictionary<int, PartialPiece> _partials = [];
    private readonly HashSet<int> _verifying = [];
    // Pieces being assembled or verified (in _partials or _verifying): one array read for the picker's scan instead of a
    // dictionary and a set lookup per piece.
    private readonly bool[] _inFlight;
    private readonly Func<int, bool> _wanted;

    /// <param name="verified">The store's verified pieces (read, never changed here).</param>
    public BlockScheduler(PieceLayout layout, Bitfield verified, PieceBufferBudget buffers, Random? random = null)
    {
        _layout = layout;
        _verified = verified;
        _buffers = buffers;
        Picker = new PiecePicker(layout.PieceCount, random);
        _inFlight = new bool[layout.PieceCount];
        _wanted = i => !_inFlight[i] && !_verified[i];
    }

    public PiecePicker Picker { get; }
    /// <summary>Pieces being assembled.</summary>
    public IReadOnlyCollection<PartialPiece> Partials => _partials.Values;
    public int VerifyingCount => _verifying.Count;

    // ---- availability ----

    /// <summary>A peer's bitfield, have-all (<paramref name="seed"/>) or have-none (null bits), counted for rarity.</summary>
    public void AddPeer(PeerState peer, byte[]? bits, bool seed)
    {
        if (seed)
        {
            peer.IsSeed = true;
            Picker.AddSeed();
            return;
        }
        try
        {
            peer.Has = bits == null ? new Bitfield(_layout.PieceCount) : Bitfield.FromBytes(bits, _layout.PieceCount);
        }
        catch (InvalidDataException e)
        {
            throw new WireProtocolException("bad bitfield: " + e.Message);
        }
        Picker.AddPeer(peer.Has);
    }

    /// <summary>A have message (the piece is in range; the caller checked).</summary>
    public void AddHave(PeerState peer, int piece)
    {
        if (peer.IsSeed) return;
        peer.Has ??= new Bitfield(_layout.PieceCount);
        if (peer.Has.Set(piece)) Picker.AddHave(piece);
    }

    /// <summary>Whether the peer holds a piece this node lacks.</summary>
    public bool Wants(PeerState peer)
    {
        for (int i = 0; i < _verified.Length; i++)
            if (!_verified[i] && peer.PeerHas(i)) return true;
        return false;
    }

    // ---- requests ----

    /// <summary>How many more requests the peer should get now: none while it chokes us, we do not want from it, or it left.</summary>
    public static int Wanted(PeerState peer) => peer.PeerChoking || !peer.AmInterested || peer.Detached ? 0 : peer.Depth - peer.Outstanding.Count;

    /// <summary>
    /// Adds up to <paramref name="want"/> requests for <paramref name="peer"/> to <paramref name="output"/> and records
    /// them as outstanding, sent at <paramref name="now"/>: blocks of started pieces first, then new pieces (memory
    /// allowing), then end game duplicates (two copies of a request at most).
    /// </summary>
    public void PickBlocks(PeerState peer, int want, List<Request> output, long now)
    {
        int target = output.Count + want;
        foreach (var partial in _partials.Values)
        {
            if (!peer.PeerHas(partial.Index) || !MayJoin(peer, partial)) continue;
            RequestFree(peer, partial, target, output, now);
            if (output.Count >= target) return;
        }
        while (output.Count < target)
        {
            int piece = Picker.Pick(peer.HasPiece, _wanted, _verified.Count);
            if (piece < 0) break;
            int length = _layout.PieceLength(piece);
            // Memory for assembling pieces is bounded across all downloads; a swarm holding no buffer at all may always
            // start one piece, so no download starves.
            bool holdsNone = _partials.Count == 0 && _verifying.Count == 0;
            if (holdsNone) _buffers.ForceReserve(length);
            else if (!_buffers.TryReserve(length)) return;
            var partial = new PartialPiece(piece, length, _layout.BlockCount(piece)) { ExclusiveOwner = peer.OnParole ? peer : null };
            _partials.Add(piece, partial);
            _inFlight[piece] = true;
            RequestFree(peer, partial, target, output, now);
        }
        if (output.Count >= target || _verified.Count + _partials.Count + _verifying.Count < _layout.PieceCount) return;
        // End game: every missing piece is in flight. Ask this peer too for blocks others have not delivered yet (two copies at most).
        foreach (var partial in _partials.Values)
        {
            if (!peer.PeerHas(partial.Index) || !MayJoin(peer, partial)) continue;
            for (int b = 0; b < partial.Blocks.Length && output.Count < target; b++)
            {
                ref var slot = ref partial.Blocks[b];
                if (slot.Received || slot.First == null || slot.First == peer || slot.Second != null) continue;
                slot.Second = peer;
                AddRequest(peer, partial.Index, b, output, now);
            }
        }
    }

    /// <summary>
    /// Parole (after a piece from several peers failed its hash and we cannot tell who lied): a peer on parole only gets
    /// whole pieces of its own, and nobody joins those, so the next failure names the liar.
    /// </summary>
    private static bool MayJoin(PeerState peer, PartialPiece partial)
    {
        if (partial.ExclusiveOwner == peer) return true;
        if (partial.ExclusiveOwner != null) return false;
        if (!peer.OnParole) return true;
        // A peer on parole may take over a piece that no other connected peer is working on.
        foreach (var c in partial.Contributors) if (c != peer && !c.Detached) return false;
        foreach (var slot in partial.Blocks)
            if ((slot.First != null && slot.First != peer) || (slot.Second != null && slot.Second != peer)) return false;
        partial.ExclusiveOwner = peer;
        return true;
    }

    private void RequestFree(PeerState peer, PartialPiece partial, int target, List<Request> output, long now)
    {
        for (int b = 0; b < partial.Blocks.Length && output.Count < target; b++)
        {
            ref var slot = ref partial.Blocks[b];
            if (slot.Received || slot.First != null) continue;
            slot.First = peer;
            AddRequest(peer, partial.Index, b, output, now);
        }
    }

    private void AddRequest(PeerState peer, int piece, int block, List<Request> output, long now)
    {
        int offset = block * PieceLayout.BlockSize;
        peer.Outstanding[PeerState.BlockKey(piece, offset)] = now;
        peer.LastRequested = now;
        output.Add(new Request(piece, offset, _layout.BlockLength(piece, block)));
    }

    /// <summary>Forgets that <paramref name="peer"/> was asked for a block, so another peer can be.</summary>
    private void ReleaseSlot(long key, PeerState peer)
    {
        int piece = (int)(key >> 32), offset = (int)(uint)key;
        if (!_partials.TryGetValue(piece, out var partial)) return;
        ref var slot = ref partial.Blocks[offset / PieceLayout.BlockSize];
        if (slot.First == peer) { slot.First = slot.Second; slot.Second = null; }
        else if (slot.Second == peer) slot.Second = null;
    }

    // ---- answers ----

    /// <summary>
    /// A block arrived from <paramref name="from"/>: copied into its piece if that peer was asked for it.
    /// <paramref name="cancelAt"/> is the other peer asked for the same block in end game (its request is withdrawn here;
    /// the caller sends the cancel); <paramref name="complete"/> the piece, when this was its last block (the caller
    /// verifies it; it counts as verifying until <see cref="EndVerify"/>).
    /// </summary>
    public BlockResult OnBlock(PeerState from, int piece, int offset, ReadOnlySequence<byte> payload, out PeerState? cancelAt, out PartialPiece? complete)
    {
        cancelAt = null;
        complete = null;
        int length = (int)payload.Length;
        if (!_layout.IsValidBlock(piece, offset, length))
            throw new WireProtocolException($"block {piece}/{offset} of {length} bytes does not fit the content");
        long key = PeerState.BlockKey(piece, offset);
        if (!from.Outstanding.Remove(key) || !_partials.TryGetValue(piece, out var partial)) return BlockResult.Unexpected; // cancelled, timed out or already done
        from.RecordBlock(length);
        ref var slot = ref partial.Blocks[offset / PieceLayout.BlockSize];
        if (slot.Received) return BlockResult.Duplicate;
        payload.CopyTo(partial.Buffer.Span.Slice(offset, length));
        slot.Received = true;
        slot.From = from;
        partial.ReceivedCount++;
        partial.Contributors.Add(from);
        var other = slot.First == from ? slot.Second : slot.First;
        if (other != null && other != from && other.Outstanding.Remove(key)) cancelAt = other;
        slot.First = slot.Second = null;
        if (partial.ReceivedCount == partial.Blocks.Length)
        {
            _partials.Remove(piece);
            _verifying.Add(piece);
            complete = partial;
        }
        return BlockResult.Stored;
    }

    /// <summary>
    /// The peer declined a request: the block goes back to the pool. Declined as not available or served elsewhere, the
    /// peer is not asked for the piece for <see cref="RefusalWindowMs"/> and its other requests for it are withdrawn:
    /// returns the cancels to send it (null when none).
    /// </summary>
    public List<Cancel>? OnReject(PeerState peer, Reject reject, long now)
    {
        long key = PeerState.BlockKey(reject.Piece, reject.Offset);
        if (peer.Outstanding.Remove(key)) ReleaseSlot(key, peer);
        if (reject.Reason is not (RejectReason.Elsewhere or RejectReason.NotAvailable) || (uint)reject.Piece >= (uint)_layout.PieceCount) return null;
        (peer.Refused ??= [])[reject.Piece] = now + RefusalWindowMs;
        if (reject.Reason == RejectReason.NotAvailable && peer.NotHeld is not { Count: >= MaxNotHeld }) (peer.NotHeld ??= []).Add(reject.Piece);
        List<Cancel>? cancels = null;
        var same = peer.Outstanding.Keys.Where(k => (int)(k >> 32) == reject.Piece).ToList();
        foreach (long k in same)
        {
            peer.Outstanding.Remove(k);
            ReleaseSlot(k, peer);
            int offset = (int)(uint)k;
            (cancels ??= []).Add(new Cancel(reject.Piece, offset, _layout.BlockLength(reject.Piece, offset / PieceLayout.BlockSize)));
        }
        return cancels;
    }

    /// <summary>Requests unanswered for longer than <paramref name="timeoutMs"/> go back to the pool, and the peer's depth to the minimum.</summary>
    public void ExpireRequests(PeerState peer, long now, double timeoutMs)
    {
        List<long>? expired = null;
        foreach (var (key, sent) in peer.Outstanding)
            if (now - sent > timeoutMs) (expired ??= []).Add(key);
        if (expired == null) return;
        foreach (long key in expired)
        {
            peer.Outstanding.Remove(key);
            ReleaseSlot(key, peer);
        }
        peer.Depth = PeerState.MinDepth; // snubbed: ask little of it until it proves faster
    }

    /// <summary>The peer left: its availability is no longer counted and its requests go back to the pool.</summary>
    public void Detach(PeerState peer)
    {
        if (peer.IsSeed) Picker.RemoveSeed();
        else if (peer.Has != null) Picker.RemovePeer(peer.Has);
        foreach (long key in peer.Outstanding.Keys) ReleaseSlot(key, peer);
        peer.Outstanding.Clear();
        foreach (var partial in _partials.Values) if (partial.ExclusiveOwner == peer) partial.ExclusiveOwner = null;
    }

    /// <summary>Nothing a banned peer sent stays in a piece being assembled.</summary>
    public void DropContributions(PeerState liar)
    {
        foreach (var partial in _partials.Values)
        {
            if (!partial.Contributors.Remove(liar)) continue;
            for (int b = 0; b < partial.Blocks.Length; b++)
            {
                ref var slot = ref partial.Blocks[b];
                if (slot.Received && slot.From == liar)
                {
                    slot = default;
                    partial.ReceivedCount--;
                }
            }
        }
    }

    /// <summary>A piece handed out by <see cref="OnBlock"/> was verified or failed: a failed one is picked again.</summary>
    public void EndVerify(int piece)
    {
        if (_verifying.Remove(piece)) _inFlight[piece] = false;
    }

    /// <summary>Missing pieces that every one of <paramref name="peers"/> has answered "not available" (at most <paramref name="max"/>).</summary>
    public List<int> PiecesNoPeerServes(IEnumerable<PeerState> peers, int max)
    {
        var result = new List<int>();
        for (int i = 0; i < _layout.PieceCount && result.Count < max; i++)
            if (!_verified[i] && peers.All(p => p.NotHeld != null && p.NotHeld.Contains(i))) result.Add(i);
        return result;
    }

    public string DescribePartials() =>
        string.Join(", ", _partials.Values.Select(p => $"{p.Index}:{p.ReceivedCount}/{p.Blocks.Length}{(p.ExclusiveOwner != null ? " own" : "")} req {p.Blocks.Count(b => b.First != null)}"));

    /// <summary>Gives every piece buffer back (the swarm is closing).</summary>
    public void ReturnAll()
    {
        foreach (var p in _partials.Values)
        {
            p.Return(_buffers);
            _inFlight[p.Index] = false;
        }
        _partials.Clear();
    }
}
