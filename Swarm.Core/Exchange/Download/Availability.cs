using Swarm.Core.Storage;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange.Download;

/// <summary>
/// Who holds which piece of one content, from each peer's bitfield / have-all / have-none and have messages: kept aside
/// per peer until the manifest (and with it the layout) is known, then counted for the scheduler's rarity. For live
/// content every piece a peer offers must come with its signed hash first. Also whether we are interested in a peer.
/// Not thread-safe: the swarm calls it under its lock.
/// </summary>
internal sealed class Availability
{
    private StoredContent? _content;
    private BlockScheduler? _scheduler;

    /// <summary>The manifest is known: availability from now on is counted at once; the caller applies what was kept aside.</summary>
    public void Install(StoredContent content, BlockScheduler scheduler)
    {
        _content = content;
        _scheduler = scheduler;
    }

    /// <summary>A peer's first availability: have-all (<paramref name="seed"/>), a bitfield, or have-none (null bits).</summary>
    public void OnAvailability(PeerState peer, byte[]? bits, bool seed)
    {
        if (_content == null)
        {
            peer.PendingBitfield = bits;
            peer.IsSeed = seed;
            return;
        }
        Apply(peer, bits, seed);
    }

    public void OnHave(PeerState peer, int piece)
    {
        if (_content == null)
        {
            peer.PendingHaves ??= [];
            if (peer.PendingHaves.Count > WireLimits.MaxBitfieldBytes * 8) throw new WireProtocolException("too many have messages");
            peer.PendingHaves.Add(piece);
            return;
        }
        AddHave(peer, piece);
    }

    /// <summary>After <see cref="Install"/>: counts what the peer announced before the manifest came.</summary>
    public void ApplyPending(PeerState peer)
    {
        if (peer.PendingBitfield == null && !peer.IsSeed && peer.PendingHaves == null) return;
        bool seed = peer.IsSeed;
        peer.IsSeed = false;
        Apply(peer, peer.PendingBitfield, seed);
        peer.PendingBitfield = null;
    }

    /// <summary>
    /// True when we just became interested in the peer (the caller sends Interested): while <paramref name="downloading"/>,
    /// it holds a piece we lack.
    /// </summary>
    public bool UpdateInterest(PeerState peer, bool downloading)
    {
        if (peer.AmInterested || !downloading || _content == null || _content.IsComplete || !_scheduler!.Wants(peer)) return false;
        peer.AmInterested = true;
        return true;
    }

    private void Apply(PeerState peer, byte[]? bits, bool seed)
    {
        _scheduler!.AddPeer(peer, bits, seed);
        if (peer.PendingHaves != null)
        {
            foreach (int piece in peer.PendingHaves) AddHave(peer, piece);
            peer.PendingHaves = null;
        }
        var manifest = _content!.Manifest;
        if (!manifest.IsLive) return;
        for (int i = 0; i < manifest.PieceCount; i++)
            if (peer.PeerHas(i) && !manifest.HasPieceHash(i)) throw new WireProtocolException($"offers piece {i} of a live content without its signed hash");
    }

    private void AddHave(PeerState peer, int piece)
    {
        var manifest = _content!.Manifest;
        if ((uint)piece >= (uint)manifest.PieceCount) throw new WireProtocolException($"have for piece {piece} of {manifest.PieceCount}");
        if (manifest.IsLive && !manifest.HasPieceHash(piece)) throw new WireProtocolException($"have for piece {piece} of a live content without its signed hash");
        _scheduler!.AddHave(peer, piece);
    }
}
