using System.Collections.Concurrent;
using System.Net;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>
/// Peer exchange (as BitTorrent's BEP 11): a newcomer learns where our other peers listen, and they learn where it
/// listens. Addresses learned from peers wait here for the download's dialer.
/// </summary>
internal sealed class PeerExchange
{
    private const int MaxLearned = 256;
    private readonly ConcurrentQueue<IPEndPoint> _learned = new();

    /// <summary>Tells <paramref name="session"/> about <paramref name="others"/>, and them about it.</summary>
    public static void Introduce(PeerSession session, List<PeerSession> others)
    {
        var known = others.Where(s => s.Peer.ListenPort > 0).Select(s => s.Address).Take(WireLimits.MaxPeerListEntries).ToList();
        if (known.Count > 0) session.Send(new PeerList(known));
        if (session.Peer.ListenPort <= 0) return;
        var announce = new PeerList([session.Address]);
        foreach (var other in others) other.Send(announce);
    }

    /// <summary>Keeps the addresses a peer sent (up to a bound) for the dialer.</summary>
    public void Learn(PeerList list)
    {
        foreach (var endPoint in list.Peers)
        {
            if (_learned.Count >= MaxLearned) return;
            _learned.Enqueue(endPoint);
        }
    }

    public bool TryTake(out IPEndPoint endPoint) => _learned.TryDequeue(out endPoint!);
}
