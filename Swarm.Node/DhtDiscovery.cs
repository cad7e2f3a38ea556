using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Exchange;

namespace Swarm.Node;

/// <summary>
/// Finds peers for a download in the DHT (not counting this node). When the DHT is out of reach (no contact, or none
/// answered the last lookup) it first joins again through the bootstrap addresses and saved contacts, waiting longer for
/// their answers each time (a busy node answers late); when still nobody answers it throws
/// <see cref="PeerUnavailableException"/> saying what was tried, and the download asks again after a back-off until its
/// stall timeout.
/// </summary>
internal sealed class DhtDiscovery(DhtNode dht, Hash256 self, BootstrapList bootstrap, int failedJoins)
{
    private int _joinAttempts = failedJoins; // joins that found nobody since the last lookup that reached the DHT (for the message)
    private int _rejoins; // of those, the ones made here: each waits longer for the pings
    private bool _lastSearchReachedNobody;

    /// <summary>Whether the DHT can be asked at all: it knows nodes, or has addresses to join through (which may answer later).</summary>
    public bool CanDiscover => dht.GetStats().RoutingTableSize > 0 || CanJoin;

    private bool CanJoin => bootstrap.Count > 0 || dht.SavedContacts > 0;

    public async Task<IReadOnlyList<IPEndPoint>> FindAsync(ContentId id, CancellationToken cancellationToken)
    {
        // Alone with nowhere to join through: nothing to wait for, so "nobody found" (the download ends soon).
        if (dht.GetStats().RoutingTableSize == 0 && !CanJoin) return [];
        if (CanJoin && (dht.GetStats().RoutingTableSize == 0 || Volatile.Read(ref _lastSearchReachedNobody)))
        {
            int attempt = Interlocked.Increment(ref _joinAttempts);
            int rejoin = Interlocked.Increment(ref _rejoins);
            await dht.BootstrapAsync(bootstrap.Resolve(), cancellationToken, dht.Options.RpcTimeout * Math.Min(4, rejoin + 1)).ConfigureAwait(false);
            if (dht.GetStats().RoutingTableSize == 0) throw new PeerUnavailableException(Unreached(attempt));
        }
        var search = await dht.SearchProvidersAsync(id.Value, cancellationToken).ConfigureAwait(false);
        bool reachedNobody = search.NodesAnswered == 0 && search.Providers.Count == 0;
        Volatile.Write(ref _lastSearchReachedNobody, reachedNobody);
        if (reachedNobody)
            throw new PeerUnavailableException(search.NodesAsked == 0 ? "every DHT contact of this node stopped answering"
                : $"none of the {search.NodesAsked} DHT node(s) asked answered the lookup for {id}");
        Interlocked.Exchange(ref _joinAttempts, 0);
        Interlocked.Exchange(ref _rejoins, 0);
        return [.. search.Providers.Where(p => p.NodeId != self).OrderByDescending(p => p.Holdings.VerifiedPieces).Select(p => p.EndPoint)];
    }

    private string Unreached(int attempts)
    {
        int saved = dht.SavedContacts;
        string where = (bootstrap.Count, saved) switch
        {
            (0, _) => $"none of the {saved} contacts saved in {LocalNode.RoutingTableFile} answered",
            (_, 0) => $"no DHT node answered at {bootstrap}",
            _ => $"no DHT node answered at {bootstrap} or at the {saved} contacts saved in {LocalNode.RoutingTableFile}",
        };
        return $"{where} ({attempts} join attempt{(attempts == 1 ? "" : "s")}); check that a swarm node runs there, or give another --bootstrap IP:PORT or --peer IP:PORT";
    }
}
