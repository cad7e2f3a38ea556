using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Identity;

namespace Swarm.Core.Dht;

/// <summary>
/// A Kademlia DHT node over UDP: routing table, RPC service (ping, find-node, providers, signed records), iterative
/// lookups, provider announcements with periodic re-announce, and bucket refresh.
/// </summary>
/// <remarks>
/// Node ids learned from the network enter the routing table only after answering one of our requests: an unknown node
/// that sends us a request is pinged back first. Provider records are stored under the IP the announcing datagram came
/// from and need a token that only that IP received (BEP 5), so nobody announces for an address it does not hold.
/// </remarks>
public sealed class DhtNode : IAsyncDisposable
{
    private sealed class Announcement(int tcpPort, ProviderHoldings holdings, DateTimeOffset nextDue)
    {
        public int TcpPort = tcpPort;
        public ProviderHoldings Holdings = holdings;
        public DateTimeOffset NextDue = nextDue;
        /// <summary>The address our own record was stored under here, so that a withdraw removes that one.</summary>
        public IPEndPoint? SelfStored;
    }

    private readonly NodeKey _key;
    private readonly DhtOptions _options;
    private readonly ILogger? _logger;
    private readonly TimeProvider _time;
    private readonly RoutingTable _table;
    private readonly ProviderStore _providers;
    private readonly RecordStore _records;
    private readonly AnnounceTokens _tokens;
    private readonly DhtCounters _counters = new();
    private readonly DhtSocket _socket;
    private readonly ConcurrentDictionary<Hash256, Announcement> _announcements = new();
    private readonly ConcurrentDictionary<IPEndPoint, DateTimeOffset> _recentlyVerified = new();
    private readonly Lock _savedLock = new();
    private readonly List<Contact> _savedContacts = [];
    private readonly CancellationTokenSource _stop = new();
    private int _verificationsInFlight;
    private int _announcingAll;
    private IPEndPoint[] _joinThrough = [];
    private DateTimeOffset _nextRejoin;
    private int _rejoins;
    private Task? _maintenance;
    private IPEndPoint? _external;
    private LookupResult? _lastLookup;
    private int _disposed;

    public DhtNode(NodeKey key, DhtOptions? options = null, ILogger? logger = null)
    {
        _key = key;
        _options = options ?? new DhtOptions();
        _options.Validate();
        _logger = logger;
        _time = _options.TimeProvider;
        _table = new RoutingTable(key.NodeId, _options);
        _providers = new ProviderStore(_options);
        _records = new RecordStore(_options);
        _tokens = new AnnounceTokens(_options.TokenRotation, _time);
        _socket = new DhtSocket(key.NodeId, _options, _counters, HandleRequest, OnAnswered, logger);
    }

    public Hash256 NodeId => _key.NodeId;
    public DhtOptions Options => _options;

    /// <summary>The bound UDP endpoint (after <see cref="Start"/>).</summary>
    public IPEndPoint LocalEndPoint => _socket.LocalEndPoint ?? throw new InvalidOperationException("the DHT node is not started");

    internal RoutingTable RoutingTable => _table;

    /// <summary>Whether this node's routing table holds <paramref name="id"/>.</summary>
    public bool KnowsNode(Hash256 id) => _table.Contains(id);

    /// <summary>Binds the UDP socket (port 0 picks a free port) and starts serving and the periodic maintenance.</summary>
    public void Start(IPEndPoint udpListen)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        _socket.Start(udpListen);
        _maintenance = MaintainAsync(_stop.Token);
        _logger?.LogInformation("DHT node {NodeId} listening on udp {EndPoint}", NodeId.ToHex()[..16], LocalEndPoint);
    }

    // ---------------------------------------------------------------- joining

    /// <summary>
    /// Joins the network: pings the given addresses and the contacts loaded by <see cref="LoadRoutingTable"/> (those that
    /// answer enter the routing table), looks up our own id, then refreshes every bucket farther than our closest neighbour.
    /// Returns the routing table size.
    /// </summary>
    public async Task<int> BootstrapAsync(IEnumerable<IPEndPoint> addresses, CancellationToken cancellationToken, TimeSpan? pingTimeout = null)
    {
        var seeds = new HashSet<IPEndPoint>(addresses.Select(DhtAddress.Normalize));
        if (seeds.Count > 0) _joinThrough = [.. seeds];
        lock (_savedLock)
            foreach (var c in _savedContacts) seeds.Add(c.EndPoint);
        seeds.Remove(LocalEndPoint);
        var timeout = pingTimeout ?? _options.RpcTimeout;
        // Ping every seed; at the same time probe them, so that when nothing listens at any of them (ICMP refusals) the
        // node knows it is alone at once instead of after the RPC timeout.
        using var pingsDone = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pings = Parallel.ForEachAsync(seeds, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = pingsDone.Token },
            async (ep, ct) => await PingAsync(ep, timeout, ct).ConfigureAwait(false));
        var probe = DhtProbe.AllRefusedAsync(seeds, timeout, pingsDone.Token);
        if (await Task.WhenAny(pings, probe).ConfigureAwait(false) == probe && await probe.ConfigureAwait(false) && _table.Count == 0)
        {
            await pingsDone.CancelAsync().ConfigureAwait(false);
            try { await pings.ConfigureAwait(false); } catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested) { }
            LastBootstrapRefused = true;
            return 0;
        }
        await pings.ConfigureAwait(false);
        await pingsDone.CancelAsync().ConfigureAwait(false);
        LastBootstrapRefused = false;
        if (_table.Count == 0) return 0;
        // Saved contacts stay candidates until the node has joined once: a later attempt pings them again.
        lock (_savedLock) _savedContacts.Clear();

        await LookupAsync(NodeId, cancellationToken).ConfigureAwait(false);
        var nearest = _table.Closest(NodeId, 1);
        int nearestBucket = nearest.Count == 0 ? 0 : DhtAddress.BucketIndex(NodeId, nearest[0].Id);
        await Parallel.ForEachAsync(Enumerable.Range(0, nearestBucket), new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken },
            async (bucket, ct) => await LookupAsync(DhtAddress.RandomIdInBucket(NodeId, bucket), ct).ConfigureAwait(false)).ConfigureAwait(false);
        return _table.Count;
    }

    /// <summary>
    /// True when the last <see cref="BootstrapAsync"/> found nothing listening at any address it was given (every one
    /// refused): trying again at once is pointless.
    /// </summary>
    public bool LastBootstrapRefused { get; private set; }

    /// <summary>Contacts loaded by <see cref="LoadRoutingTable"/> that <see cref="BootstrapAsync"/> has not yet joined through.</summary>
    public int SavedContacts { get { lock (_savedLock) return _savedContacts.Count; } }

    /// <summary>Pings an address; returns the id of the node that answered, or null.</summary>
    public Task<Hash256?> PingAsync(IPEndPoint endPoint, CancellationToken cancellationToken) => PingAsync(endPoint, _options.RpcTimeout, cancellationToken);

    /// <summary>Pings an address, waiting up to <paramref name="timeout"/> for the answer (longer than usual for a busy bootstrap node).</summary>
    public async Task<Hash256?> PingAsync(IPEndPoint endPoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var reply = await _socket.RequestAsync(endPoint, PingRequest.Instance, timeout, cancellationToken).ConfigureAwait(false);
        if (reply?.Body is not PongResponse pong) return null;
        if (DhtAddress.IsUsable(pong.Observed)) _external = pong.Observed;
        return reply.Sender;
    }

    // ---------------------------------------------------------------- lookups

    /// <summary>The k closest live nodes to <paramref name="target"/> (not counting this node), closest first.</summary>
    public async Task<IReadOnlyList<Contact>> FindNodeAsync(Hash256 target, CancellationToken cancellationToken) =>
        (await LookupAsync(target, cancellationToken).ConfigureAwait(false)).Closest;

    /// <summary>An iterative find-node lookup, with what it cost.</summary>
    public async Task<LookupResult> LookupAsync(Hash256 target, CancellationToken cancellationToken)
    {
        var request = new FindNodeRequest(target);
        return await RunLookupAsync(target, "find_node", async (c, ct) =>
        {
            var reply = await AskAsync(c, request, ct).ConfigureAwait(false);
            return reply?.Body is NodesResponse nodes ? Usable(nodes.Contacts, reply.From) : null;
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Providers of <paramref name="key"/> found along a lookup toward it (plus any this node stores), freshest record per provider.</summary>
    public async Task<IReadOnlyList<ProviderRecord>> FindProvidersAsync(Hash256 key, CancellationToken cancellationToken) =>
        (await LookupProvidersAsync(key, cancellationToken).ConfigureAwait(false)).Providers;

    /// <summary>As <see cref="FindProvidersAsync"/>, also telling what the lookup cost and how many nodes answered: none means the DHT was not reached, not that nobody provides.</summary>
    public async Task<ProviderSearch> SearchProvidersAsync(Hash256 key, CancellationToken cancellationToken)
    {
        var (providers, lookup, _) = await LookupProvidersAsync(key, cancellationToken).ConfigureAwait(false);
        return new ProviderSearch(providers, lookup);
    }

    internal async Task<(List<ProviderRecord> Providers, LookupResult Lookup, Dictionary<Hash256, byte[]> Tokens)> LookupProvidersAsync(Hash256 key, CancellationToken cancellationToken)
    {
        var found = new Dictionary<(Hash256, IPEndPoint), ProviderRecord>();
        var tokens = new Dictionary<Hash256, byte[]>();
        var sync = new Lock();
        void Merge(ProviderRecord p)
        {
            var id = (p.NodeId, p.EndPoint);
            if (!found.TryGetValue(id, out var known) || p.Age < known.Age) found[id] = p;
        }
        var request = new GetProvidersRequest(key);
        var lookup = await RunLookupAsync(key, "get_providers", async (c, ct) =>
        {
            var reply = await AskAsync(c, request, ct).ConfigureAwait(false);
            if (reply?.Body is not ProvidersResponse response) return null;
            lock (sync)
            {
                tokens[c.Id] = response.Token;
                foreach (var p in response.Providers)
                    if (DhtAddress.IsUsable(p.EndPoint, reply.From.Address)) Merge(p);
            }
            return Usable(response.Contacts, reply.From);
        }, cancellationToken).ConfigureAwait(false);
        lock (sync)
        {
            foreach (var p in _providers.Get(key)) Merge(p);
            return (found.Values.OrderBy(p => p.Age).ToList(), lookup, new Dictionary<Hash256, byte[]>(tokens));
        }
    }

    /// <param name="kind">What the lookup asks for, as the lookup-duration histogram labels it.</param>
    private async Task<LookupResult> RunLookupAsync(Hash256 target, string kind, Lookup.Query query, CancellationToken cancellationToken)
    {
        var local = LocalEndPoint; // throws before Start
        _table.MarkActivity(target);
        var seeds = _table.Closest(target, _options.BucketSize * 2);
        var result = await Lookup.RunAsync(NodeId, local, target, seeds, _options, query, cancellationToken).ConfigureAwait(false);
        DhtCounters.Add(ref _counters.Lookups);
        if (result.TimedOut) DhtCounters.Add(ref _counters.LookupsTimedOut);
        Telemetry.DhtLookup.Record(result.Duration.TotalSeconds, new KeyValuePair<string, object?>("kind", kind));
        _lastLookup = result;
        return result;
    }

    /// <summary>One lookup query: null when unanswered (which counts against the node) or answered by a different id.</summary>
    private async Task<DhtReply?> AskAsync(Contact node, IDhtBody request, CancellationToken cancellationToken)
    {
        var reply = await _socket.RequestAsync(node.EndPoint, request, _options.RpcTimeout, cancellationToken).ConfigureAwait(false);
        if (reply == null)
        {
            _table.RecordFailure(node.Id);
            return null;
        }
        return reply.Sender == node.Id ? reply : null;
    }

    private static List<Contact> Usable(IReadOnlyList<Contact> contacts, IPEndPoint from)
    {
        var result = new List<Contact>(contacts.Count);
        foreach (var c in contacts)
            if (DhtAddress.IsUsable(c.EndPoint, from.Address)) result.Add(c);
        return result;
    }

    // ---------------------------------------------------------------- providers

    /// <summary>
    /// Announces this node as a provider of <paramref name="key"/>, serving over TCP on <paramref name="tcpPort"/> (the IP is
    /// the one our datagrams come from), and keeps re-announcing it every <see cref="DhtOptions.ReannounceInterval"/> until
    /// <see cref="Withdraw"/>. Call it as soon as the node holds verified pieces. Returns how many nodes stored the record.
    /// </summary>
    public async Task<int> AnnounceAsync(Hash256 key, int tcpPort, ProviderHoldings holdings, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tcpPort, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tcpPort, 65535);
        _announcements[key] = new Announcement(tcpPort, holdings, _time.GetUtcNow() + _options.ReannounceInterval);
        return await AnnounceOnceAsync(key, tcpPort, holdings, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Updates what we hold of an announced key; it is announced within <see cref="DhtOptions.HoldingsUpdateDelay"/> (bursts coalesce). False if the key is not announced.</summary>
    public bool UpdateHoldings(Hash256 key, ProviderHoldings holdings)
    {
        if (!_announcements.TryGetValue(key, out var a)) return false;
        lock (a)
        {
            a.Holdings = holdings;
            var soon = _time.GetUtcNow() + _options.HoldingsUpdateDelay;
            if (soon < a.NextDue) a.NextDue = soon;
        }
        return true;
    }

    /// <summary>Stops announcing <paramref name="key"/> (e.g. the content was deleted). Records held by other nodes simply expire.</summary>
    public bool Withdraw(Hash256 key)
    {
        if (!_announcements.TryRemove(key, out var a)) return false;
        IPEndPoint? self;
        lock (a) self = a.SelfStored;
        if (self != null) _providers.Remove(key, self);
        return true;
    }

    private async Task<int> AnnounceOnceAsync(Hash256 key, int tcpPort, ProviderHoldings holdings, CancellationToken cancellationToken)
    {
        var (_, lookup, tokens) = await LookupProvidersAsync(key, cancellationToken).ConfigureAwait(false);
        var request = (Contact c) => new AddProviderRequest(key, tokens[c.Id], tcpPort, holdings);
        int stored = await StoreOnClosestAsync(lookup, tokens, request, cancellationToken).ConfigureAwait(false);
        if (IsAmongClosest(key, lookup.Closest) && SelfProviderEndPoint(tcpPort, null) is { } self && _providers.Add(key, NodeId, self, holdings) == DhtStatus.Ok)
        {
            stored++;
            if (_announcements.TryGetValue(key, out var a))
            {
                IPEndPoint? before;
                lock (a) (before, a.SelfStored) = (a.SelfStored, self);
                if (before != null && !before.Equals(self)) _providers.Remove(key, before); // our address as seen by others changed
            }
        }
        _logger?.LogDebug("announced {Key} on {Count} nodes", key.ToHex()[..16], stored);
        return stored;
    }

    private async Task<int> StoreOnClosestAsync(LookupResult lookup, Dictionary<Hash256, byte[]> tokens, Func<Contact, IDhtBody> request, CancellationToken cancellationToken)
    {
        var targets = lookup.Closest.Where(c => tokens.ContainsKey(c.Id)).ToList();
        var results = await Task.WhenAll(targets.Select(async c =>
        {
            var reply = await _socket.RequestAsync(c.EndPoint, request(c), _options.RpcTimeout, cancellationToken).ConfigureAwait(false);
            return reply?.Body is StatusResponse { Status: DhtStatus.Ok };
        })).ConfigureAwait(false);
        return results.Count(ok => ok);
    }

    private bool IsAmongClosest(Hash256 key, IReadOnlyList<Contact> closest) =>
        closest.Count < _options.BucketSize || key.Xor(NodeId) < key.Xor(closest[^1].Id);

    /// <summary>
    /// Where other nodes reach our TCP port: the bound address if specific; else the address a requester sent its datagram
    /// to (<paramref name="reachedAt"/>: that one it can dial); else the address other nodes see our datagrams come from;
    /// null when none is known yet (listening on all addresses and never answered by anyone).
    /// </summary>
    private IPEndPoint? SelfProviderEndPoint(int tcpPort, IPAddress? reachedAt)
    {
        var local = _socket.LocalEndPoint;
        if (local != null && !local.Address.Equals(IPAddress.Any) && !local.Address.Equals(IPAddress.IPv6Any)) return new IPEndPoint(local.Address, tcpPort);
        if (reachedAt != null && DhtAddress.IsUsable(new IPEndPoint(reachedAt, tcpPort))) return new IPEndPoint(reachedAt, tcpPort);
        return _external is { } ext ? new IPEndPoint(ext.Address, tcpPort) : null;
    }

    /// <summary>
    /// The routing table went from empty to non-empty: announce everything now instead of at the next re-announce (up to
    /// 10 minutes away), since an announce made while alone was stored nowhere.
    /// </summary>
    private void OnTableFilled()
    {
        if (_announcements.IsEmpty || _disposed != 0 || Interlocked.Exchange(ref _announcingAll, 1) != 0) return;
        _ = AnnounceAllAsync();
    }

    private async Task AnnounceAllAsync()
    {
        try
        {
            await Task.Yield(); // off the receive loop
            var next = _time.GetUtcNow() + _options.ReannounceInterval;
            foreach (var (key, a) in _announcements)
            {
                int port;
                ProviderHoldings holdings;
                lock (a)
                {
                    a.NextDue = next;
                    port = a.TcpPort;
                    holdings = a.Holdings;
                }
                int stored = await AnnounceOnceAsync(key, port, holdings, _stop.Token).ConfigureAwait(false);
                _logger?.LogInformation("joined the DHT: announced {Key} on {Count} nodes", key.ToHex()[..16], stored);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or InvalidOperationException) { }
        catch (Exception e)
        {
            _logger?.LogWarning("announcing after joining the DHT failed: {Error}", e.Message);
        }
        finally
        {
            Volatile.Write(ref _announcingAll, 0);
        }
    }

    // ---------------------------------------------------------------- signed records

    /// <summary>Signs a record with this node's key.</summary>
    public SignedRecord CreateRecord(Hash256 key, ReadOnlySpan<byte> value, long sequence, DateTimeOffset expires) =>
        SignedRecord.Create(_key, key, value, sequence, expires);

    /// <summary>Stores a signed record on the k nodes closest to its key (and here, if this node is among them). Returns how many stored it.</summary>
    public async Task<int> PutAsync(SignedRecord record, CancellationToken cancellationToken)
    {
        if (!record.Verify()) throw new ArgumentException("the record's signature does not verify", nameof(record));
        var (_, lookup, tokens) = await LookupRecordsAsync(record.Key, record.Publisher, cancellationToken).ConfigureAwait(false);
        int stored = await StoreOnClosestAsync(lookup, tokens, c => new PutRequest(tokens[c.Id], record), cancellationToken).ConfigureAwait(false);
        if (IsAmongClosest(record.Key, lookup.Closest) && _records.Put(record) == DhtStatus.Ok) stored++;
        return stored;
    }

    /// <summary>Valid records under <paramref name="key"/> (of one publisher, if given): the highest sequence per publisher, signatures checked, highest sequence first.</summary>
    public async Task<IReadOnlyList<SignedRecord>> GetAsync(Hash256 key, Hash256? publisher, CancellationToken cancellationToken) =>
        (await LookupRecordsAsync(key, publisher, cancellationToken).ConfigureAwait(false)).Records;

    internal async Task<(List<SignedRecord> Records, LookupResult Lookup, Dictionary<Hash256, byte[]> Tokens)> LookupRecordsAsync(Hash256 key, Hash256? publisher, CancellationToken cancellationToken)
    {
        var best = new Dictionary<Hash256, SignedRecord>();
        var tokens = new Dictionary<Hash256, byte[]>();
        var sync = new Lock();
        var request = new GetRequest(key, publisher);
        var lookup = await RunLookupAsync(key, "get_records", async (c, ct) =>
        {
            var reply = await AskAsync(c, request, ct).ConfigureAwait(false);
            if (reply?.Body is not RecordsResponse response) return null;
            lock (sync) tokens[c.Id] = response.Token;
            foreach (var r in response.Records) Consider(r);
            return Usable(response.Contacts, reply.From);
        }, cancellationToken).ConfigureAwait(false);
        foreach (var r in _records.Get(key, publisher)) Consider(r);
        lock (sync)
            return (best.Values.OrderByDescending(r => r.Sequence).ToList(), lookup, new Dictionary<Hash256, byte[]>(tokens));

        void Consider(SignedRecord r)
        {
            if (r.Key != key || (publisher != null && r.Publisher != publisher.Value) || r.Expires <= _time.GetUtcNow()) return;
            lock (sync)
                if (best.TryGetValue(r.Publisher, out var known) && known.Sequence >= r.Sequence) return;
            if (!r.Verify()) return; // outside the lock: a signature check takes a while
            lock (sync)
                if (!best.TryGetValue(r.Publisher, out var known) || known.Sequence < r.Sequence) best[r.Publisher] = r;
        }
    }

    // ---------------------------------------------------------------- serving

    private IDhtBody? HandleRequest(IPEndPoint source, IPAddress? reachedAt, DhtHeader header, IDhtBody body)
    {
        IDhtBody? response = body switch
        {
            PingRequest => new PongResponse(source),
            FindNodeRequest f => new NodesResponse(Fit(_table.Closest(f.Target, _options.BucketSize, header.Sender), ResponseBudget - 3)),
            GetProvidersRequest g => ProvidersFor(g.Key, source, reachedAt, header.Sender),
            AddProviderRequest a => new StatusResponse(DhtMessageKind.AddProviderResult, AcceptProvider(a, source, header.Sender)),
            GetRequest g => RecordsFor(g, source, header.Sender),
            PutRequest p => new StatusResponse(DhtMessageKind.PutResult, AcceptRecord(p, source)),
            _ => null,
        };
        ConsiderRequester(new Contact(header.Sender, source));
        return response;
    }

    /// <summary>
    /// Bytes a response body may use: the datagram limit less the envelope and a possible swarm-key authenticator
    /// (timestamp and MAC), 1,312 bytes: room for k = 20 IPv6 contacts (56 bytes each) and more.
    /// </summary>
    private const int ResponseBudget = DhtLimits.MaxDatagramLength - DhtLimits.AuthenticatorLength - DhtLimits.EnvelopeReserve;

    private static List<Contact> Fit(List<Contact> contacts, int budget)
    {
        int used = 0, n = 0;
        while (n < contacts.Count && n < DhtLimits.MaxContacts && used + DhtLimits.ContactSize(contacts[n]) <= budget) used += DhtLimits.ContactSize(contacts[n++]);
        if (n < contacts.Count) contacts.RemoveRange(n, contacts.Count - n);
        return contacts;
    }

    private ProvidersResponse ProvidersFor(Hash256 key, IPEndPoint source, IPAddress? reachedAt, Hash256 requester)
    {
        const int budget = ResponseBudget - (2 + DhtLimits.TokenLength) - 9;
        var contacts = _table.Closest(key, _options.BucketSize, requester);
        int contactBytes = contacts.Sum(DhtLimits.ContactSize);
        // Providers first, but never crowding out more than half of the closer nodes the lookup needs to go on.
        int providerBudget = Math.Max(budget / 2, budget - contactBytes);
        var providers = new List<ProviderRecord>();
        int used = 0;
        // A node that holds the content answers with itself, under the address this requester reached it at, wherever
        // the key's records are stored: the content is found as soon as a lookup reaches us.
        var self = SelfRecord(key, reachedAt);
        if (self != null)
        {
            providers.Add(self);
            used += DhtLimits.ProviderSize(self);
        }
        foreach (var p in _providers.Get(key))
        {
            if (self != null && p.NodeId == NodeId) continue; // our own stored record, perhaps under an address this requester cannot dial
            if (providers.Count >= DhtLimits.MaxProviders) break;
            int size = DhtLimits.ProviderSize(p);
            if (used + size > providerBudget) continue;
            providers.Add(p);
            used += size;
        }
        return new ProvidersResponse(_tokens.Issue(source.Address), providers, Fit(contacts, budget - used));
    }

    private ProviderRecord? SelfRecord(Hash256 key, IPAddress? reachedAt)
    {
        if (!_announcements.TryGetValue(key, out var a)) return null;
        int port;
        ProviderHoldings holdings;
        lock (a) (port, holdings) = (a.TcpPort, a.Holdings);
        return SelfProviderEndPoint(port, reachedAt) is { } ep ? new ProviderRecord(NodeId, ep, holdings, TimeSpan.Zero) : null;
    }

    private RecordsResponse RecordsFor(GetRequest request, IPEndPoint source, Hash256 requester)
    {
        const int budget = ResponseBudget - (2 + DhtLimits.TokenLength) - 9;
        var contacts = _table.Closest(request.Key, _options.BucketSize, requester);
        int recordBudget = Math.Max(budget / 2, budget - contacts.Sum(DhtLimits.ContactSize));
        var records = new List<SignedRecord>();
        int used = 0;
        foreach (var r in _records.Get(request.Key, request.Publisher))
        {
            if (records.Count >= DhtLimits.MaxRecords) break;
            int size = DhtLimits.RecordSize(r);
            // The first record always goes out, even if it leaves little room for contacts.
            if (used + size > (records.Count == 0 ? budget : recordBudget)) continue;
            records.Add(r);
            used += size;
        }
        return new RecordsResponse(_tokens.Issue(source.Address), records, Fit(contacts, budget - used));
    }

    private DhtStatus AcceptProvider(AddProviderRequest request, IPEndPoint source, Hash256 sender)
    {
        if (!_tokens.Validate(source.Address, request.Token)) return DhtStatus.BadToken;
        return _providers.Add(request.Key, sender, new IPEndPoint(source.Address, request.TcpPort), request.Holdings, source);
    }

    private DhtStatus AcceptRecord(PutRequest request, IPEndPoint source)
    {
        if (!_tokens.Validate(source.Address, request.Token)) return DhtStatus.BadToken;
        var record = request.Record;
        if (record.Expires <= _time.GetUtcNow()) return DhtStatus.Invalid;
        var current = _records.Get(record.Key, record.Publisher);
        if (current.Count > 0 && current[0].Sequence > record.Sequence) return DhtStatus.StaleSequence; // before paying for a signature check
        if (!record.Verify()) return DhtStatus.BadSignature;
        return _records.Put(record, source);
    }

    /// <summary>An unknown node asked us something: ping it back, and it enters the routing table if it answers.</summary>
    private void ConsiderRequester(Contact contact)
    {
        if (!DhtAddress.IsUsable(contact.EndPoint) || _table.Contains(contact.Id) || !_table.HasRoomFor(contact.Id)) return;
        var now = _time.GetUtcNow();
        if (_recentlyVerified.TryGetValue(contact.EndPoint, out var last) && now - last < _options.VerificationCooldown) return;
        if (Interlocked.Increment(ref _verificationsInFlight) > _options.MaxConcurrentVerifications)
        {
            Interlocked.Decrement(ref _verificationsInFlight);
            return;
        }
        if (_recentlyVerified.Count > 4096)
            foreach (var (ep, at) in _recentlyVerified)
                if (now - at >= _options.VerificationCooldown) _recentlyVerified.TryRemove(ep, out _);
        _recentlyVerified[contact.EndPoint] = now;
        _ = VerifyAsync(contact.EndPoint);
    }

    private async Task VerifyAsync(IPEndPoint endPoint)
    {
        try
        {
            await Task.Yield(); // off the receive loop, and after our answer to the request went out
            await PingAsync(endPoint, _stop.Token).ConfigureAwait(false); // an answer reaches the table through OnAnswered
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or InvalidOperationException) { }
        finally
        {
            Interlocked.Decrement(ref _verificationsInFlight);
        }
    }

    /// <summary>A node answered one of our requests: the one way into the routing table.</summary>
    private void OnAnswered(Contact contact)
    {
        if (!DhtAddress.IsUsable(contact.EndPoint)) return;
        bool wasEmpty = _table.Count == 0;
        var result = _table.Observe(contact);
        if (wasEmpty && _table.Count > 0) OnTableFilled();
        if (result.Outcome == AddOutcome.PingNeeded) _ = CheckLeastRecentlySeenAsync(result.ToPing);
    }

    private async Task CheckLeastRecentlySeenAsync(Contact oldest)
    {
        bool answered = true;
        try
        {
            var reply = await _socket.RequestAsync(oldest.EndPoint, PingRequest.Instance, _options.RpcTimeout, _stop.Token).ConfigureAwait(false);
            answered = reply != null && reply.Sender == oldest.Id;
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or InvalidOperationException) { }
        finally
        {
            _table.ResolvePing(oldest, answered);
        }
    }

    // ---------------------------------------------------------------- maintenance

    private async Task MaintainAsync(CancellationToken stop)
    {
        var shortest = new[] { _options.BucketRefreshInterval, _options.ReannounceInterval, _options.HoldingsUpdateDelay, _options.ProviderTtl }.Min();
        var tick = TimeSpan.FromTicks(Math.Clamp(shortest.Ticks / 4, TimeSpan.FromMilliseconds(50).Ticks, TimeSpan.FromSeconds(30).Ticks));
        using var timer = new PeriodicTimer(tick);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                try
                {
                    await MaintainOnceAsync(stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested) { break; }
                catch (Exception e)
                {
                    _logger?.LogWarning(e, "DHT maintenance failed");
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    internal async Task MaintainOnceAsync(CancellationToken cancellationToken)
    {
        _providers.Expire();
        _records.Expire();
        var now = _time.GetUtcNow();
        foreach (var (key, a) in _announcements)
        {
            int port;
            ProviderHoldings holdings;
            lock (a)
            {
                if (a.NextDue > now) continue;
                a.NextDue = now + _options.ReannounceInterval;
                port = a.TcpPort;
                holdings = a.Holdings;
            }
            await AnnounceOnceAsync(key, port, holdings, cancellationToken).ConfigureAwait(false);
        }
        if (_table.Count == 0)
        {
            await RejoinAsync(now, cancellationToken).ConfigureAwait(false);
            return;
        }
        _rejoins = 0;
        foreach (int bucket in _table.BucketsNeedingRefresh(_options.BucketRefreshInterval))
            await LookupAsync(DhtAddress.RandomIdInBucket(NodeId, bucket), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Alone although bootstrap addresses were given (they did not answer: busy, or not started yet): tries them again,
    /// backing off from 5 s to 5 minutes, so a node started before its bootstrap node still joins.
    /// </summary>
    private async Task RejoinAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (_joinThrough.Length == 0 && SavedContacts == 0) return;
        if (now < _nextRejoin) return;
        _rejoins++;
        _nextRejoin = now + TimeSpan.FromSeconds(Math.Min(300, 5 << Math.Min(_rejoins - 1, 6)));
        int size = await BootstrapAsync(_joinThrough, cancellationToken, _options.RpcTimeout * Math.Min(4, _rejoins + 1)).ConfigureAwait(false);
        if (size > 0) _logger?.LogInformation("joined the DHT through {Bootstrap} after {Attempts} more attempt(s)", string.Join(", ", _joinThrough), _rejoins);
    }

    // ---------------------------------------------------------------- persistence and status

    /// <summary>Writes the routing table's live contacts to <paramref name="path"/> (atomically).</summary>
    public void SaveRoutingTable(string path) => RoutingTableFile.Save(path, NodeId, _table.AllContacts());

    /// <summary>
    /// Reads contacts saved by <see cref="SaveRoutingTable"/>; the next <see cref="BootstrapAsync"/> pings them and keeps
    /// those that answer. Returns how many were read (0 for a missing or unreadable file).
    /// </summary>
    public int LoadRoutingTable(string path)
    {
        var contacts = RoutingTableFile.Load(path);
        lock (_savedLock) _savedContacts.AddRange(contacts);
        return contacts.Count;
    }

    public DhtStats GetStats() => new()
    {
        NodeId = NodeId,
        LocalEndPoint = _socket.LocalEndPoint,
        ExternalEndPoint = _external,
        RoutingTableSize = _table.Count,
        Buckets = _table.BucketCounts(),
        RecordsHeld = _records.Count,
        ProvidersHeld = _providers.Count,
        ProviderKeys = _providers.KeyCount,
        Announcements = _announcements.Count,
        DatagramsReceived = DhtCounters.Read(ref _counters.DatagramsReceived),
        DroppedOversized = DhtCounters.Read(ref _counters.DroppedOversized),
        DroppedMalformed = DhtCounters.Read(ref _counters.DroppedMalformed),
        DroppedBadKey = DhtCounters.Read(ref _counters.DroppedBadKey),
        DroppedReplayed = DhtCounters.Read(ref _counters.DroppedReplayed),
        DroppedRateLimited = DhtCounters.Read(ref _counters.DroppedRateLimited),
        DroppedUnsolicited = DhtCounters.Read(ref _counters.DroppedUnsolicited),
        RequestsAnswered = DhtCounters.Read(ref _counters.RequestsAnswered),
        RpcsSent = DhtCounters.Read(ref _counters.RpcsSent),
        RpcsAnswered = DhtCounters.Read(ref _counters.RpcsAnswered),
        RpcsTimedOut = DhtCounters.Read(ref _counters.RpcsTimedOut),
        SendErrors = DhtCounters.Read(ref _counters.SendErrors),
        HandlerErrors = DhtCounters.Read(ref _counters.HandlerErrors),
        Lookups = DhtCounters.Read(ref _counters.Lookups),
        LookupsTimedOut = DhtCounters.Read(ref _counters.LookupsTimedOut),
        LastLookup = _lastLookup,
    };

    /// <summary>Stops at once: no goodbye to other nodes (they notice by timeouts), no waiting on the network.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        await _socket.DisposeAsync().ConfigureAwait(false);
        if (_maintenance != null)
        {
            try { await _maintenance.ConfigureAwait(false); }
            catch (OperationCanceledException) { }
        }
        _stop.Dispose();
    }
}
