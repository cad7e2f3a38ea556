using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>
/// What the swarm knows and decides about one peer, apart from its connection: what it holds, choke and interest both
/// ways, the requests out with it and its pipeline depth, parole, and what seed steering did for it. Guarded by the
/// swarm's lock (the traffic counters excepted); the download and upload parts read and change it, and tests build it
/// without a socket.
/// </summary>
internal sealed class PeerState
{
    public const int InitialDepth = 16;
    public const int MinDepth = 4;
    public const int MaxDepth = 128;
    /// <summary>Target time a request waits in the peer's queue: depth ≈ rate × this / block size.</summary>
    private const double QueueSeconds = 0.5;

    public PeerState(Hash256 nodeId, IPEndPoint address)
    {
        NodeId = nodeId;
        Address = address;
        HasPiece = PeerHas;
    }

    public Hash256 NodeId { get; }
    /// <summary>Where the peer accepts connections (for bans and redials).</summary>
    public IPEndPoint Address { get; }
    /// <summary><see cref="PeerHas"/> as a delegate made once, for the picker.</summary>
    public Func<int, bool> HasPiece { get; }

    public Bitfield? Has;
    public bool IsSeed;
    public byte[]? PendingBitfield;
    public HashSet<int>? PendingHaves;
    /// <summary>Live content: signed piece hashes that came before the manifest did.</summary>
    public List<SignedPieceHash>? PendingPieceHashes;
    public bool PeerChoking = true;
    public bool PeerInterested;
    public bool AmChoking = true;
    public bool AmInterested;
    /// <summary>Contributed to a piece that failed its hash along with other peers: gets only whole pieces of its own.</summary>
    public bool OnParole;
    /// <summary>Gone from the swarm: never given requests again (a pump may still run from an older snapshot).</summary>
    public bool Detached;
    /// <summary>Requests out with the peer (<see cref="BlockKey"/>) and when each was sent.</summary>
    public readonly Dictionary<long, long> Outstanding = [];
    public int Depth = InitialDepth;
    public double DownloadRate;
    /// <summary>When we last asked this peer for a block (blocks after that, up to the request timeout, are expected).</summary>
    public long LastRequested;
    /// <summary>Pieces the peer declined to serve (not available from it right now), until when.</summary>
    public Dictionary<int, long>? Refused;
    /// <summary>Pieces this peer answered "not available" although it offered them (its stored copy failed its hash check, say).</summary>
    public HashSet<int>? NotHeld;
    /// <summary>Pieces a complete node has started sending to this peer (the rest of their blocks are never steered away).</summary>
    public readonly HashSet<int> Serving = [];
    /// <summary>Pieces a complete node already sent this peer elsewhere for once.</summary>
    public readonly HashSet<int> SteeredAway = [];

    private long _windowBytes;
    private long _lastBlock = Environment.TickCount64;

    public long BytesDownloaded { get; private set; }
    /// <summary>Written by the session's upload loop.</summary>
    public long BytesUploaded { get; private set; }

    /// <summary>Milliseconds since a block went either way (or since the state was made).</summary>
    public long IdleFor => Environment.TickCount64 - Interlocked.Read(ref _lastBlock);

    public static long BlockKey(int piece, int offset) => ((long)piece << 32) | (uint)offset;

    public bool PeerHas(int piece) =>
        (IsSeed || (Has != null && Has[piece])) && !(Refused != null && Refused.TryGetValue(piece, out long until) && until > Environment.TickCount64);

    /// <summary>A block we asked for arrived.</summary>
    public void RecordBlock(int length)
    {
        Interlocked.Exchange(ref _lastBlock, Environment.TickCount64);
        _windowBytes += length;
        BytesDownloaded += length;
    }

    /// <summary>A block went out to the peer.</summary>
    public void RecordUpload(int length)
    {
        BytesUploaded += length;
        Interlocked.Exchange(ref _lastBlock, Environment.TickCount64);
    }

    /// <summary>Once a second: download rate from the last window, pipeline depth from the rate.</summary>
    public void Tick()
    {
        DownloadRate = DownloadRate * 0.5 + _windowBytes * 0.5;
        _windowBytes = 0;
        int depth = (int)Math.Ceiling(DownloadRate * QueueSeconds / PieceLayout.BlockSize);
        Depth = Math.Clamp(Math.Max(depth, Depth / 2), MinDepth, MaxDepth);
    }

    /// <summary>For stall diagnostics.</summary>
    public string Describe() =>
        $"{(PeerChoking ? "choked" : "unchoked")}{(AmInterested ? " interested" : "")}{(OnParole ? " parole" : "")} out {Outstanding.Count} depth {Depth} seed {IsSeed}";

    public override string ToString() => $"{Address} ({NodeId.ToHex()[..12]})";
}
