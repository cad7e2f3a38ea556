using System.Net;

namespace Swarm.Core.Exchange;

/// <summary>
/// Room for one more session: a content's peer limit and per-address cap, and the node's connection limit. At a limit,
/// the session idle longest (no block either way for <see cref="EngineOptions.IdleEviction"/>) gives its slot up.
/// </summary>
internal static class PeerLimits
{
    /// <summary>
    /// Under the swarm's lock: room among <paramref name="sessions"/> (plus <paramref name="attaching"/> sessions on their
    /// way in) for <paramref name="newcomer"/>, making it by closing an idle session if need be. Null when there is
    /// room, else why not.
    /// </summary>
    public static RefusalReason? TryMakeRoom(IReadOnlyList<PeerSession> sessions, int attaching, PeerSession newcomer, EngineOptions options)
    {
        var address = newcomer.RemoteAddress;
        bool capAddress = !(options.LoopbackAsHosts && IPAddress.IsLoopback(address));
        int live = attaching, fromAddress = 0;
        foreach (var s in sessions)
        {
            if (s.GivingUpSlot) continue;
            live++;
            if (s.RemoteAddress.Equals(address)) fromAddress++;
        }
        if (capAddress && fromAddress >= options.MaxPeersPerAddress)
        {
            if (!GiveUpIdlest(sessions.Where(s => s.RemoteAddress.Equals(address)), options.IdleEviction))
                return RefusalReason.PeersPerAddress;
            live--;
        }
        if (live >= options.MaxPeersPerContent && !GiveUpIdlest(sessions, options.IdleEviction)) return RefusalReason.PeerLimit;
        return null;
    }

    /// <summary>
    /// Closes the session of <paramref name="sessions"/> idle longest (no block either way for at least
    /// <paramref name="idle"/>) to give its slot to a newcomer; false when none is that idle. One rule for the node's
    /// connection limit and a content's peer limits.
    /// </summary>
    public static bool GiveUpIdlest(IEnumerable<PeerSession> sessions, TimeSpan idle)
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
}
