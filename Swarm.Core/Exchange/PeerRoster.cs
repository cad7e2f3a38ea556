using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>
/// The sessions attached to one content, and the lock of that content's swarm: it guards the list, every session's
/// <see cref="PeerState"/> and the parts that decide on them (scheduler, availability, smart ban, upload slots, seed
/// steering), which take no lock of their own.
/// </summary>
internal sealed class PeerRoster
{
    private readonly List<PeerSession> _sessions = [];
    private int _attaching;

    public Lock Sync { get; } = new();

    /// <summary>The attached sessions; read and changed under <see cref="Sync"/> only.</summary>
    public IReadOnlyList<PeerSession> Sessions => _sessions;

    public int Count
    {
        get { lock (Sync) return _sessions.Count; }
    }

    public List<PeerSession> Snapshot()
    {
        lock (Sync) return [.. _sessions];
    }

    /// <summary>Under <see cref="Sync"/>: the attached session whose state this is.</summary>
    public PeerSession? Find(PeerState state)
    {
        foreach (var s in _sessions) if (s.State == state) return s;
        return null;
    }

    /// <summary>Whether a session with the peer listening at this address exists (so dialling it again would only make a duplicate).</summary>
    public bool IsConnectedTo(IPEndPoint listenAddress)
    {
        lock (Sync) return _sessions.Any(s => s.Address.Equals(listenAddress));
    }

    public void Broadcast<T>(T message) where T : IWireMessage<T>
    {
        foreach (var s in Snapshot()) s.Send(message);
    }

    /// <summary>
    /// Room for a newcomer on its way in (its greeting goes out before it is added), within the content's peer limits;
    /// null when there is room (release it with <see cref="EndAttach"/>), else why not.
    /// </summary>
    public RefusalReason? BeginAttach(PeerSession newcomer, EngineOptions options)
    {
        lock (Sync)
        {
            if (PeerLimits.TryMakeRoom(_sessions, _attaching, newcomer, options) is { } refused) return refused;
            _attaching++;
            return null;
        }
    }

    public void EndAttach()
    {
        lock (Sync) _attaching--;
    }

    /// <summary>
    /// Under <see cref="Sync"/>: adds the session. A second connection to the same peer (both dialled, or dialled twice):
    /// both ends keep the one whose dialler has the lower node id (<paramref name="initiator"/>), so they agree without
    /// talking; returns the session it replaces, or throws when it is the one to go.
    /// </summary>
    public PeerSession? Add(PeerSession session, Func<PeerSession, Hash256> initiator)
    {
        var existing = _sessions.FirstOrDefault(s => s.Peer.NodeId == session.Peer.NodeId);
        if (existing != null && initiator(existing) <= initiator(session)) throw new DuplicateConnectionException("already connected to this peer");
        _sessions.Add(session);
        return existing;
    }

    /// <summary>Under <see cref="Sync"/>. False when the session was not attached.</summary>
    public bool Remove(PeerSession session) => _sessions.Remove(session);
}
