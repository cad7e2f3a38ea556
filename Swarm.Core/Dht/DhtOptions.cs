namespace Swarm.Core.Dht;

/// <summary>Kademlia parameters and abuse limits. The defaults are the design's; tests shorten the timeouts.</summary>
public sealed record DhtOptions
{
    /// <summary>k: bucket size, and how many nodes a lookup returns and an announcement is stored on.</summary>
    public int BucketSize { get; init; } = 20;
    /// <summary>α: queries a lookup keeps in flight.</summary>
    public int Alpha { get; init; } = 3;
    /// <summary>Nodes of one /24 (IPv4) or /48 (IPv6) allowed in one bucket (loopback too, unless <see cref="LoopbackAsHosts"/>).</summary>
    public int MaxNodesPerSubnet { get; init; } = 2;
    /// <summary>Contacts remembered per bucket to replace nodes that stop answering.</summary>
    public int ReplacementCacheSize { get; init; } = 8;
    /// <summary>Consecutive unanswered requests after which a contact is considered gone.</summary>
    public int MaxFailures { get; init; } = 2;
    /// <summary>A full bucket pings its least-recently-seen node before evicting it only if that node was not heard from for this long.</summary>
    public TimeSpan ContactQuestionableAfter { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>Time to wait for one answer.</summary>
    public TimeSpan RpcTimeout { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>A lookup query unanswered this long stops counting against α, so the lookup widens past slow nodes.</summary>
    public TimeSpan LookupWidenAfter { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>Hard limit for one iterative lookup; it then returns what it has.</summary>
    public TimeSpan LookupTimeout { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan BucketRefreshInterval { get; init; } = TimeSpan.FromMinutes(10);
    public TimeSpan ReannounceInterval { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>How long a stored provider record lives without a re-announce.</summary>
    public TimeSpan ProviderTtl { get; init; } = TimeSpan.FromMinutes(30);
    /// <summary>The announce-token secret rotates this often; a token is accepted for up to two periods.</summary>
    public TimeSpan TokenRotation { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>Signed records are kept until their own expiry, but never longer than this.</summary>
    public TimeSpan MaxRecordLifetime { get; init; } = TimeSpan.FromHours(24);
    /// <summary>After <see cref="DhtNode.UpdateHoldings"/>, the new summary is announced within about this long (coalesces bursts of updates).</summary>
    public TimeSpan HoldingsUpdateDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Datagrams accepted per second from one source address (token bucket), and the bucket's depth. A source is an IPv4
    /// address or an IPv6 /64, whatever its ports: a new source port per datagram buys nothing.
    /// </summary>
    public double RatePerSource { get; init; } = 100;
    public int BurstPerSource { get; init; } = 200;
    /// <summary>Sources tracked by the rate limiter; beyond this, unknown sources share one overflow budget.</summary>
    public int MaxTrackedSources { get; init; } = 16_384;

    public int MaxProviderRecords { get; init; } = 50_000;
    public long MaxProviderBytes { get; init; } = 16L * 1024 * 1024;
    public int MaxProvidersPerKey { get; init; } = 128;
    /// <summary>
    /// Provider records one source address (an IPv4 address, an IPv6 /64) may hold under one key; past it, its newest
    /// announce replaces its oldest, so a flood from one address never keeps other announces out.
    /// </summary>
    public int MaxProvidersPerSource { get; init; } = 16;
    public int MaxRecords { get; init; } = 10_000;
    public long MaxRecordBytes { get; init; } = 16L * 1024 * 1024;
    public int MaxRecordsPerKey { get; init; } = 16;
    /// <summary>Signed records (publishers) one source address may hold under one key; past it, its newest replaces its oldest.</summary>
    public int MaxRecordsPerSource { get; init; } = 4;

    /// <summary>Unknown nodes that sent us requests and are being pinged back, at most, before they may enter the routing table.</summary>
    public int MaxConcurrentVerifications { get; init; } = 16;
    /// <summary>An address pinged back recently is not pinged again for this long.</summary>
    public TimeSpan VerificationCooldown { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Test swarms on one host: each loopback address:port counts as its own host for the DHT's per-address limits (the
    /// per-source rate limit, the per-/24 bucket limit, the per-source store admission). Off by default: then 127.0.0.1
    /// is one host like any other address, and many sockets on it share its limits. Production nodes leave it off: with it
    /// on, whoever can send from loopback (any local process, or a proxy relaying remote peers onto loopback) gets fresh
    /// limits for every port it opens.
    /// </summary>
    public bool LoopbackAsHosts { get; init; }

    /// <summary>
    /// Optional pre-shared swarm secret (at least 16 bytes; the node passes 32 random bytes). Every datagram then carries
    /// a timestamp and an HMAC under a key derived from it (HKDF-SHA256, info "swarm/dht/v1"); datagrams without a valid
    /// one, stamped outside <see cref="ReplayWindow"/>, or seen before are dropped unanswered.
    /// </summary>
    public byte[]? SwarmKey { get; init; }
    /// <summary>
    /// With a swarm key: how far a datagram's timestamp may be from our clock, either way. The clocks of a fleet are
    /// NTP-synced; a node whose clock is off by more gets no answers.
    /// </summary>
    public TimeSpan ReplayWindow { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>
    /// With a swarm key: accepted datagrams remembered against replay (fixed memory, about 60 bytes each). When it is full,
    /// the oldest is forgotten and datagrams stamped before it are refused: the window shrinks, replays still never pass.
    /// </summary>
    public int MaxReplayEntries { get; init; } = 65_536;
    /// <summary>Kernel receive buffer for the UDP socket.</summary>
    public int SocketReceiveBufferBytes { get; init; } = 1024 * 1024;

    /// <summary>Wall clock for expiry, token rotation and swarm-key timestamps (network timeouts always use real time).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    internal const int MinSwarmKeyLength = 16;

    internal void Validate()
    {
        if (BucketSize is < 1 or > 32) throw new ArgumentOutOfRangeException(nameof(BucketSize), BucketSize, "between 1 and 32 (a response must fit a datagram)");
        if (Alpha < 1) throw new ArgumentOutOfRangeException(nameof(Alpha));
        if (MaxNodesPerSubnet < 1) throw new ArgumentOutOfRangeException(nameof(MaxNodesPerSubnet));
        if (MaxFailures < 1) throw new ArgumentOutOfRangeException(nameof(MaxFailures));
        if (RpcTimeout <= TimeSpan.Zero || LookupTimeout <= TimeSpan.Zero || LookupWidenAfter <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(RpcTimeout), "timeouts must be positive");
        if (BucketRefreshInterval <= TimeSpan.Zero || ReannounceInterval <= TimeSpan.Zero || ProviderTtl <= TimeSpan.Zero || TokenRotation <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(BucketRefreshInterval), "intervals must be positive");
        if (RatePerSource <= 0 || BurstPerSource < 1) throw new ArgumentOutOfRangeException(nameof(RatePerSource));
        if (SwarmKey is { Length: < MinSwarmKeyLength })
            throw new ArgumentException($"a swarm key of {SwarmKey.Length} bytes is too short to authenticate anything; it needs at least {MinSwarmKeyLength}", nameof(SwarmKey));
        if (ReplayWindow < TimeSpan.FromSeconds(1)) throw new ArgumentOutOfRangeException(nameof(ReplayWindow), ReplayWindow, "at least 1 s (clocks are never closer than that)");
        if (MaxReplayEntries < 1) throw new ArgumentOutOfRangeException(nameof(MaxReplayEntries), MaxReplayEntries, "at least 1");
    }
}
