namespace Swarm.Core.Dht;

/// <summary>Kademlia parameters and abuse limits. The defaults are the design's; tests shorten the timeouts.</summary>
public sealed record DhtOptions
{
    /// <summary>k: bucket size, and how many nodes a lookup returns and an announcement is stored on.</summary>
    public int BucketSize { get; init; } = 20;
    /// <summary>α: queries a lookup keeps in flight.</summary>
    public int Alpha { get; init; } = 3;
    /// <summary>Nodes of one /24 (IPv4) or /48 (IPv6) allowed in one bucket. Loopback addresses are exempt.</summary>
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

    /// <summary>Datagrams accepted per second from one source (token bucket), and the bucket's depth.</summary>
    public double RatePerSource { get; init; } = 100;
    public int BurstPerSource { get; init; } = 200;
    /// <summary>Rate-limit loopback sources per IP and port instead of per IP, so many nodes on 127.0.0.1 do not share one budget.</summary>
    public bool RateLimitLoopbackPerPort { get; init; } = true;
    /// <summary>Sources tracked by the rate limiter; beyond this, unknown sources share one overflow budget.</summary>
    public int MaxTrackedSources { get; init; } = 16_384;

    public int MaxProviderRecords { get; init; } = 50_000;
    public long MaxProviderBytes { get; init; } = 16L * 1024 * 1024;
    public int MaxProvidersPerKey { get; init; } = 128;
    /// <summary>
    /// Provider records one source address (an IPv4 address, an IPv6 /64) may hold under one key; past it, its newest
    /// announce replaces its oldest, so a flood from one address never keeps other announces out. Loopback gets more,
    /// because test swarms run many nodes on 127.0.0.1.
    /// </summary>
    public int MaxProvidersPerSource { get; init; } = 16;
    public int MaxProvidersPerSourceLoopback { get; init; } = 64;
    public int MaxRecords { get; init; } = 10_000;
    public long MaxRecordBytes { get; init; } = 16L * 1024 * 1024;
    public int MaxRecordsPerKey { get; init; } = 16;
    /// <summary>Signed records (publishers) one source address may hold under one key; past it, its newest replaces its oldest.</summary>
    public int MaxRecordsPerSource { get; init; } = 4;

    /// <summary>Unknown nodes that sent us requests and are being pinged back, at most, before they may enter the routing table.</summary>
    public int MaxConcurrentVerifications { get; init; } = 16;
    /// <summary>An address pinged back recently is not pinged again for this long.</summary>
    public TimeSpan VerificationCooldown { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Optional pre-shared swarm key: every datagram carries an HMAC with it, and datagrams without a valid one are dropped.</summary>
    public byte[]? SwarmKey { get; init; }
    /// <summary>Kernel receive buffer for the UDP socket.</summary>
    public int SocketReceiveBufferBytes { get; init; } = 1024 * 1024;

    /// <summary>Wall clock for expiry and token rotation (network timeouts always use real time).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

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
        if (SwarmKey is { Length: 0 }) throw new ArgumentException("an empty swarm key", nameof(SwarmKey));
    }
}
