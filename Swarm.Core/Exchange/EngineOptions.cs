namespace Swarm.Core.Exchange;

/// <summary>Settings of the exchange engine. Defaults follow the design; tests shorten the timeouts.</summary>
public sealed record EngineOptions
{
    /// <summary>Upload limit in bytes per second for the whole node; 0 is unlimited.</summary>
    public long UploadRate { get; init; }
    /// <summary>Download limit in bytes per second for the whole node; 0 is unlimited.</summary>
    public long DownloadRate { get; init; }
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>
    /// A connection must finish admission and the handshake within this. Silent connections do not wait for it: a full
    /// handshake pool closes them for newcomers. Not shorter: on a host whose cores are saturated (a lab of 12 nodes on
    /// two cores) honest handshakes took seconds, and a dialler gives up on a peer after three failed attempts.
    /// </summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>An accepted connection must send its 38-byte preamble within this.</summary>
    public TimeSpan PreambleTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>Inbound connections still in admission or handshake, all sources together (not counted in <see cref="MaxConnections"/>).</summary>
    public int MaxPendingHandshakes { get; init; } = 64;
    /// <summary>Inbound connections still in admission or handshake from one IP address.</summary>
    public int MaxPendingPerAddress { get; init; } = 8;
    /// <summary>Sessions for one content with peers at one IP address.</summary>
    public int MaxPeersPerAddress { get; init; } = 8;
    /// <summary>
    /// A session with no block either way for this long gives its slot up to a newcomer when a peer limit is reached
    /// (sessions that only send keep-alives cannot hold a content's slots).
    /// </summary>
    public TimeSpan IdleEviction { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Memory that frames larger than 1 MiB (manifests of large content) may hold while they arrive, all peers together.</summary>
    public long MaxLargeFrameBytes { get; init; } = 32L * 1024 * 1024;
    /// <summary>
    /// Test swarms on one host: loopback peers are exempt from the per-address limits (every node of such a swarm is
    /// 127.0.0.1). Never needed in production.
    /// </summary>
    public bool LoopbackAsHosts { get; init; }
    /// <summary>The private swarm's key (null: an open swarm, as without one).</summary>
    public Swarm.Core.Identity.SwarmKey? SwarmKey { get; init; }
    /// <summary>Encrypt peer traffic (TLS 1.3). Both ends must agree; off only for networks where nobody can listen.</summary>
    public bool Encrypt { get; init; } = true;
    /// <summary>How long a peer that sent a piece failing its hash stays banned.</summary>
    public TimeSpan BanDuration { get; init; } = TimeSpan.FromHours(1);
    /// <summary>A download with no verified progress for this long fails.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>A request unanswered for this long is given to another peer.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan KeepAliveInterval { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>A connection that has received nothing (not even a keep-alive) for this long is closed.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>Connection attempts per peer address before a download gives up on it.</summary>
    public int DialAttempts { get; init; } = 3;
    public int MaxPeersPerContent { get; init; } = 30;
    /// <summary>Peer connections at most, all content together; more inbound ones are refused, dialling waits.</summary>
    public int MaxConnections { get; init; } = 256;
    /// <summary>
    /// Peers uploaded to at once by rank (tit for tat), besides the optimistic slot. Eight, as libtorrent, not BitTorrent's
    /// four: on a fleet's symmetric links, four left uplinks idle while their few receivers' downlinks were full (measured in
    /// the lab, 12 hosts at 50 Mbit/s: 1.42x the bound with 4, 1.23x with 8).
    /// </summary>
    public int UploadSlots { get; init; } = 8;
    public int OptimisticSlots { get; init; } = 1;
    /// <summary>How long a finished download of live content keeps its connections open for the ingester's seal.</summary>
    public TimeSpan SealWait { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>How often the choker re-ranks peers.</summary>
    public TimeSpan ChokeInterval { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>How often the optimistic slot moves to another peer.</summary>
    public TimeSpan OptimisticInterval { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Memory for pieces being assembled and verified, across all downloads.</summary>
    public long MaxPieceBufferBytes { get; init; } = 64L * 1024 * 1024;
}
