using System.Diagnostics;

namespace Swarm.Core.Exchange;

/// <summary>
/// The trace spans of one download, one per phase (never per piece): <c>swarm.lookup</c> from the first DHT lookup until
/// one finds providers, <c>swarm.peers</c> from the start until the first peer session, <c>swarm.pieces</c> from then until
/// every piece is verified. They overlap (the DHT is asked while peers given by hand are dialled), so each is a child of
/// the caller's span (a task's) and none becomes the current span. Nothing is made when the caller's span is not
/// recorded (tracing off, or a background repair with no span).
/// </summary>
internal sealed class DownloadPhases : IDisposable
{
    private readonly Activity? _parent;
    private Activity? _lookup, _peers, _pieces;
    private bool _lookupDone;
    private int _lookups;

    public DownloadPhases()
    {
        _parent = Activity.Current is { Recorded: true } current ? current : null;
        _peers = Telemetry.StartChild(_parent, "swarm.peers");
    }

    /// <summary>A DHT lookup for providers starts.</summary>
    public void LookupStarted()
    {
        if (_parent == null || _lookupDone) return;
        _lookups++;
        _lookup ??= Telemetry.StartChild(_parent, "swarm.lookup");
    }

    /// <summary>A DHT lookup ended with <paramref name="providers"/> found: the lookup phase ends at the first that found some.</summary>
    public void LookupEnded(int providers)
    {
        if (_lookup == null || providers == 0) return;
        _lookup.SetTag("swarm.providers", providers);
        _lookup.SetTag("swarm.lookups", _lookups);
        _lookup.Dispose();
        _lookup = null;
        _lookupDone = true;
    }

    /// <summary>Called on every round of the download loop: the first peer session ends the peers phase and starts the pieces phase.</summary>
    public void Observe(int peers)
    {
        if (_peers == null || peers == 0) return;
        _peers.SetTag("swarm.peers", peers);
        _peers.Dispose();
        _peers = null;
        _pieces = Telemetry.StartChild(_parent, "swarm.pieces");
    }

    /// <summary>Every piece is verified (a download that ended between two rounds still gets its pieces phase).</summary>
    public void Completed(long bytes, long fromPeers, int peers)
    {
        Observe(Math.Max(peers, 1));
        _pieces?.SetTag("swarm.bytes", bytes);
        _pieces?.SetTag("swarm.bytes_from_peers", fromPeers);
    }

    /// <summary>The download failed or was cancelled: the open phases end marked as failed.</summary>
    public void Failed(string what)
    {
        _lookup.Fail(what);
        _peers.Fail(what);
        _pieces.Fail(what);
    }

    public void Dispose()
    {
        _lookup?.Dispose();
        _peers?.Dispose();
        _pieces?.Dispose();
        _lookup = _peers = _pieces = null;
    }
}
