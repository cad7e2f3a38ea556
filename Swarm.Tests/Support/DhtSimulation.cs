using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Identity;

namespace Swarm.Tests.Support;

/// <summary>
/// N DHT nodes in one process on 127.0.0.1, each with its own key and UDP socket, joined one after another (a few at a time)
/// through nodes already in. Measures lookups against the true membership (XOR-sorted). For tests and benchmarks (this file
/// is compiled into Swarm.Benchmarks too, so it uses Swarm.Core's public API only); no console. Every node's receive loop
/// is an async socket receive, so N sockets do not hold N threads.
/// </summary>
internal sealed class DhtSimulation : IAsyncDisposable
{
    private readonly List<DhtNode> _nodes = [];
    private readonly List<NodeKey> _keys = [];
    private readonly HashSet<DhtNode> _stopped = [];
    private readonly Dictionary<DhtNode, NodeKey> _keyOf = [];
    private readonly Lock _lock = new();

    private DhtSimulation(DhtOptions options) => Options = options;

    public DhtOptions Options { get; }
    /// <summary>Why find-node lookups missed (first 20): which true-closest nodes were missing and how many tables knew them.</summary>
    public List<string> FailureNotes { get; } = [];
    public IReadOnlyList<DhtNode> Nodes { get { lock (_lock) return _nodes.ToList(); } }
    public IReadOnlyList<DhtNode> LiveNodes { get { lock (_lock) return _nodes.Where(n => !_stopped.Contains(n)).ToList(); } }

    /// <summary>
    /// Options suited to many nodes sharing 127.0.0.1 in one process: each address:port counts as its own host (its own rate
    /// limit, no /24 limit among them), short timeouts.
    /// </summary>
    public static DhtOptions LoopbackOptions() => new()
    {
        RpcTimeout = TimeSpan.FromMilliseconds(500),
        LookupWidenAfter = TimeSpan.FromMilliseconds(250),
        LookupTimeout = TimeSpan.FromSeconds(5),
        LoopbackAsHosts = true,
    };

    /// <summary>Starts <paramref name="nodeCount"/> nodes and joins them, <paramref name="joinConcurrency"/> at a time, each through two random nodes already in.</summary>
    public static async Task<DhtSimulation> StartAsync(int nodeCount, DhtOptions? options, CancellationToken cancellationToken, int joinConcurrency = 8)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeCount, 1);
        if (options is { LoopbackAsHosts: false })
            throw new ArgumentException("every simulated node is on 127.0.0.1: without LoopbackAsHosts they are one host to each other (one rate limit, two places per bucket)", nameof(options));
        var sim = new DhtSimulation(options ?? LoopbackOptions());
        try
        {
            for (int i = 0; i < nodeCount; i++) sim.AddNode();
            var nodes = sim.Nodes;
            var joined = new List<IPEndPoint> { nodes[0].LocalEndPoint };
            var sync = new Lock();
            await Parallel.ForEachAsync(nodes.Skip(1), new ParallelOptions { MaxDegreeOfParallelism = joinConcurrency, CancellationToken = cancellationToken }, async (node, ct) =>
            {
                IPEndPoint[] seeds;
                lock (sync) seeds = [joined[Random.Shared.Next(joined.Count)], joined[Random.Shared.Next(joined.Count)]];
                await node.BootstrapAsync(seeds.Distinct(), ct).ConfigureAwait(false);
                lock (sync) joined.Add(node.LocalEndPoint);
            }).ConfigureAwait(false);
            return sim;
        }
        catch
        {
            await sim.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private DhtNode AddNode(NodeKey? key = null, int port = 0)
    {
        bool owned = key == null;
        key ??= NodeKey.Generate();
        var node = new DhtNode(key, Options);
        try
        {
            node.Start(new IPEndPoint(IPAddress.Loopback, port));
        }
        catch
        {
            if (owned) key.Dispose();
            throw;
        }
        lock (_lock)
        {
            if (owned) _keys.Add(key);
            _nodes.Add(node);
            _keyOf[node] = key;
        }
        return node;
    }

    /// <summary>Adds a node (with a fresh key) that is not joined yet.</summary>
    public DhtNode AddUnjoinedNode() => AddNode();

    /// <summary>Starts a stopped node again: same key, same UDP port, empty routing table, not joined.</summary>
    public DhtNode Restart(DhtNode stopped, int port)
    {
        NodeKey key;
        lock (_lock)
        {
            if (!_stopped.Contains(stopped)) throw new InvalidOperationException("the node is still running");
            key = _keyOf[stopped];
        }
        return AddNode(key, port);
    }

    /// <summary>The k live nodes closest to <paramref name="target"/>, computed from the membership, excluding <paramref name="except"/>.</summary>
    public List<Hash256> TrueClosest(Hash256 target, int k, Hash256? except = null) =>
        LiveNodes.Select(n => n.NodeId).Where(id => id != except).Order(Comparer<Hash256>.Create((a, b) => target.Xor(a).CompareTo(target.Xor(b)))).Take(k).ToList();

    /// <summary>Find-node lookups of random keys, <paramref name="perNode"/> from every live node; a lookup succeeds if it returns exactly the true k closest.</summary>
    public async Task<SimulationReport> FindNodeAsync(int perNode, int concurrency, CancellationToken cancellationToken, IReadOnlyList<DhtNode>? from = null)
    {
        var jobs = (from ?? LiveNodes).SelectMany(n => Enumerable.Repeat(n, perNode)).ToList();
        var results = new (LookupResult, bool)[jobs.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, jobs.Count), new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken }, async (i, ct) =>
        {
            var node = jobs[i];
            var target = Hash256.Random();
            var lookup = await node.LookupAsync(target, ct).ConfigureAwait(false);
            var expected = TrueClosest(target, Options.BucketSize, node.NodeId);
            bool ok = lookup.Closest.Select(c => c.Id).SequenceEqual(expected);
            results[i] = (lookup, ok);
            if (!ok && FailureNotes.Count < 20)
            {
                var got = lookup.Closest.Select(c => c.Id).ToHashSet();
                var missing = expected.Where(e => !got.Contains(e)).ToList();
                var byId = LiveNodes.ToDictionary(n => n.NodeId);
                var notes = missing.Select(m => $"missing rank {expected.IndexOf(m)} known by {LiveNodes.Count(n => n.KnowsNode(m))} nodes, by {expected.Count(e => byId[e].KnowsNode(m))} of the expected; table {byId[m].GetStats().RoutingTableSize}");
                lock (_lock) FailureNotes.Add($"lookup from {node.NodeId.ToHex()[..8]}: got {lookup.Closest.Count} answered {lookup.Answered} failed {lookup.Failed} timedout {lookup.TimedOut}; " + string.Join("; ", notes));
            }
        }).ConfigureAwait(false);
        return SimulationReport.From(results);
    }

    /// <summary>Provider lookups of <paramref name="key"/> from each of <paramref name="from"/>; a lookup succeeds if it returns <paramref name="provider"/>.</summary>
    public static async Task<SimulationReport> FindProvidersAsync(Hash256 key, Hash256 provider, IReadOnlyList<DhtNode> from, int concurrency, CancellationToken cancellationToken)
    {
        var results = new (LookupResult, bool)[from.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, from.Count), new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken }, async (i, ct) =>
        {
            var search = await from[i].SearchProvidersAsync(key, ct).ConfigureAwait(false);
            results[i] = (search.Lookup, search.Providers.Any(p => p.NodeId == provider));
        }).ConfigureAwait(false);
        return SimulationReport.From(results);
    }

    /// <summary>Stops a node without notice (its socket just closes).</summary>
    public async Task StopAsync(DhtNode node)
    {
        lock (_lock)
            if (!_stopped.Add(node)) return;
        await node.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Stops a random <paramref name="fraction"/> of the live nodes, never one of <paramref name="keep"/>.</summary>
    public async Task<List<DhtNode>> StopRandomAsync(double fraction, IEnumerable<DhtNode> keep)
    {
        var keepSet = keep.ToHashSet();
        var live = LiveNodes;
        var candidates = live.Where(n => !keepSet.Contains(n)).ToArray();
        Random.Shared.Shuffle(candidates);
        var victims = candidates.Take((int)Math.Round(live.Count * fraction)).ToList();
        foreach (var v in victims) await StopAsync(v).ConfigureAwait(false);
        return victims;
    }

    /// <summary>Runs a standard scenario — random find-node lookups from every node, then one announce and a provider lookup from every node.</summary>
    public async Task<(SimulationReport FindNode, SimulationReport FindProviders)> RunStandardAsync(CancellationToken cancellationToken, int concurrency = 16)
    {
        var findNode = await FindNodeAsync(1, concurrency, cancellationToken).ConfigureAwait(false);
        var live = LiveNodes;
        var announcer = live[Random.Shared.Next(live.Count)];
        var key = Hash256.Random();
        await announcer.AnnounceAsync(key, 7400, ProviderHoldings.Complete(1), cancellationToken).ConfigureAwait(false);
        var providers = await FindProvidersAsync(key, announcer.NodeId, live, concurrency, cancellationToken).ConfigureAwait(false);
        return (findNode, providers);
    }

    public async ValueTask DisposeAsync()
    {
        List<DhtNode> nodes;
        List<NodeKey> keys;
        lock (_lock)
        {
            nodes = [.. _nodes];
            keys = [.. _keys];
            _nodes.Clear();
            _keys.Clear();
        }
        await Task.WhenAll(nodes.Select(n => n.DisposeAsync().AsTask())).ConfigureAwait(false);
        foreach (var k in keys) k.Dispose();
    }
}
