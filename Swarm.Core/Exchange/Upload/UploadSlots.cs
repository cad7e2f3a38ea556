namespace Swarm.Core.Exchange.Upload;

/// <summary>
/// Which interested peers this node uploads to (unchokes): the <see cref="Choker{TPeer}"/>'s rounds, a slot freed between
/// rounds given at once to the neediest waiting peer, and rate-based extra slots. Returns whom to choke and unchoke; the
/// swarm sends. Not thread-safe: the swarm calls it under its lock.
/// </summary>
internal sealed class UploadSlots(EngineOptions options)
{
    private const int MaxExtraSlots = 16;
    private readonly Choker<PeerSession> _choker = new(options.UploadSlots, options.OptimisticSlots, options.OptimisticInterval);
    private long _uploadedAtLastTick;

    /// <summary>The peer said it is (not) interested. True when it was choked and gets a free slot now (the caller sends Unchoke).</summary>
    public bool OnInterested(IReadOnlyList<PeerSession> sessions, PeerState peer, bool interested)
    {
        peer.PeerInterested = interested;
        // A free slot is given at once; otherwise the peer waits for the next choker round.
        if (!interested || !peer.AmChoking || sessions.Count(s => !s.State.AmChoking && s.State.PeerInterested) >= _choker.Slots) return false;
        peer.AmChoking = false;
        return true;
    }

    /// <summary>
    /// A slot freed between choker rounds (a peer lost interest, left, or we completed) goes at once to the neediest
    /// waiting peers, instead of idling until the next round. Returns the peers to unchoke (null when none).
    /// </summary>
    public List<PeerSession>? FillFree(IReadOnlyList<PeerSession> sessions)
    {
        int used = sessions.Count(s => !s.State.AmChoking && s.State.PeerInterested);
        if (used >= _choker.Slots) return null;
        List<PeerSession>? unchoke = null;
        foreach (var s in sessions.Where(s => s.State.AmChoking && s.State.PeerInterested).OrderByDescending(s => Need(s.State)).Take(_choker.Slots - used))
        {
            s.State.AmChoking = false;
            (unchoke ??= []).Add(s);
        }
        return unchoke;
    }

    /// <summary>
    /// A choker round: while downloading, reward the peers that upload to us fastest (tit for tat); when
    /// <paramref name="seeding"/>, serve the peers that have had the least from us (round robin), so every peer gets served.
    /// Returns each peer whose state changes, and whether it is now unchoked.
    /// </summary>
    public List<(PeerSession Peer, bool Unchoke)> Round(IReadOnlyList<PeerSession> sessions, bool seeding, long now)
    {
        List<(PeerSession, bool)> changes = [];
        var interested = sessions.Where(s => s.State.PeerInterested).ToList();
        var chosen = _choker.Decide(interested, seeding ? s => -(double)s.State.BytesUploaded : s => s.State.DownloadRate, now, s => Need(s.State));
        foreach (var s in sessions)
        {
            bool unchoke = chosen.Contains(s);
            if (unchoke == !s.State.AmChoking) continue;
            s.State.AmChoking = !unchoke;
            changes.Add((s, unchoke));
        }
        return changes;
    }

    /// <summary>
    /// Rate-based slots (as libtorrent's rate-based choker), once a second: with an upload limit set, the regular slots can
    /// leave capacity unused, because each unchoked peer's own download limit caps what it takes. While this node uploads
    /// below 90% of its limit and interested peers wait, one more slot opens each second (up to 16 more); slots close
    /// again when nobody waits. True when a slot opened (the caller fills it).
    /// </summary>
    public bool Adapt(IReadOnlyList<PeerSession> sessions, long uploaded, long limit)
    {
        long delta = uploaded - _uploadedAtLastTick;
        _uploadedAtLastTick = uploaded;
        if (limit <= 0) return false;
        bool waiting = sessions.Any(s => s.State.AmChoking && s.State.PeerInterested);
        if (delta < limit * 0.9 && waiting && _choker.ExtraSlots < MaxExtraSlots)
        {
            _choker.ExtraSlots++;
            return true;
        }
        if (!waiting && _choker.ExtraSlots > 0 && delta < limit * 0.5) _choker.ExtraSlots--;
        return false;
    }

    /// <summary>How needy a peer is: the fewer pieces it holds, the higher. Free and extra slots go to the neediest.</summary>
    private static double Need(PeerState s) => s.IsSeed ? double.MinValue : -(s.Has?.Count ?? 0);
}
