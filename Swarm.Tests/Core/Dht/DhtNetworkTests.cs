using System.Diagnostics;
using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Dht;

/// <summary>200 in-process nodes on 127.0.0.1, real UDP sockets, checked against the true membership.</summary>
[Collection(DhtNetworkCollection.Name)]
public class DhtNetworkTests
{
    private const int NodeCount = 200;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static DhtOptions Options => DhtSimulation.LoopbackOptions();

    [Fact]
    public async Task LookupsReturnTheTrueKClosestAndEveryNodeFindsTheProviders()
    {
        // No node fails here, so a generous answer window costs nothing and keeps a loaded machine from making a live node look dead.
        var options = Options with { RpcTimeout = TimeSpan.FromSeconds(2), LookupWidenAfter = TimeSpan.FromSeconds(1) };
        var clock = Stopwatch.StartNew();
        await using var sim = await DhtSimulation.StartAsync(NodeCount, options, Ct);
        var joined = clock.Elapsed;
        var nodes = sim.LiveNodes;
        Assert.All(nodes, n => Assert.True(n.GetStats().RoutingTableSize >= Options.BucketSize, $"{n.NodeId} knows only {n.GetStats().RoutingTableSize} nodes"));

        // Every node looks up a random key; each answer must be exactly the 20 closest of the whole membership.
        var findNode = await sim.FindNodeAsync(perNode: 1, concurrency: 8, Ct);
        TestContext.Current.SendDiagnosticMessage($"joined {NodeCount} nodes in {joined.TotalSeconds:0.0} s; find-node: {findNode}");
        Assert.Equal(NodeCount, findNode.Lookups);
        Assert.True(findNode.Lookups == findNode.Succeeded, string.Join("\n", sim.FailureNotes));

        // One node announces; every node finds it.
        var announcer = nodes[17];
        var key = Hash256.Random();
        int stored = await announcer.AnnounceAsync(key, 7400, ProviderHoldings.Partial(5, 40), Ct);
        Assert.True(stored >= Options.BucketSize, $"stored on {stored} nodes");
        var providers = await DhtSimulation.FindProvidersAsync(key, announcer.NodeId, nodes, concurrency: 8, Ct);
        TestContext.Current.SendDiagnosticMessage($"providers: {providers}; total {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal(NodeCount, providers.Succeeded);
        Assert.Equal(0, providers.TimedOut);

        // The stores held the announcement on (about) the 20 nodes closest to the key.
        var closest = sim.TrueClosest(key, Options.BucketSize).ToHashSet();
        int holders = nodes.Count(n => closest.Contains(n.NodeId) && n.GetStats().ProvidersHeld > 0);
        Assert.True(holders >= Options.BucketSize - 1, $"{holders} of the 20 closest hold the record");
        Assert.All(nodes, n => Assert.Equal(0, n.GetStats().HandlerErrors));
    }

    [Fact]
    public async Task ProviderLookupsSurviveThirtyPercentChurnAndARestartedNodeRejoinsFromItsSavedTable()
    {
        using var dir = new TempDirectory();
        var clock = Stopwatch.StartNew();
        await using var sim = await DhtSimulation.StartAsync(NodeCount, Options, Ct);
        var nodes = sim.LiveNodes;
        var announcer = nodes[3];
        var keys = Enumerable.Range(0, 3).Select(_ => Hash256.Random()).ToList();
        foreach (var key in keys) await announcer.AnnounceAsync(key, 7400, ProviderHoldings.Complete(8), Ct);

        // A node that will come back later saves its table and leaves with the others.
        var returning = nodes[10];
        string tablePath = dir.Combine("routing.bin");
        returning.SaveRoutingTable(tablePath);
        int returningPort = returning.LocalEndPoint.Port;

        var stopped = await sim.StopRandomAsync(0.30, keep: [announcer, returning]);
        await sim.StopAsync(returning);
        Assert.Equal(61, stopped.Count + 1);
        var live = sim.LiveNodes;
        Assert.Equal(NodeCount - 61, live.Count);

        // No notice was given: the first lookups run into dead nodes. Every node looks up every key.
        var reports = new List<SimulationReport>();
        foreach (var key in keys) reports.Add(await DhtSimulation.FindProvidersAsync(key, announcer.NodeId, live, concurrency: 64, Ct));
        int lookups = reports.Sum(r => r.Lookups), succeeded = reports.Sum(r => r.Succeeded);
        var slowest = reports.Max(r => r.LatencyMax);
        TestContext.Current.SendDiagnosticMessage($"after churn ({clock.Elapsed.TotalSeconds:0.0} s): {string.Join(" | ", reports)}");
        Assert.True(succeeded >= lookups * 0.99, $"{succeeded} of {lookups} provider lookups succeeded");
        Assert.True(slowest <= Options.LookupTimeout + TimeSpan.FromMilliseconds(500), $"slowest lookup took {slowest}");

        // The node comes back on its port with its key, with no bootstrap address, only the saved table.
        var restarted = sim.Restart(returning, returningPort);
        Assert.True(restarted.LoadRoutingTable(tablePath) > 0);
        int known = await restarted.BootstrapAsync([], Ct);
        Assert.True(known >= Options.BucketSize, $"rejoined knowing {known} nodes");
        foreach (var key in keys)
            Assert.Contains(await restarted.FindProvidersAsync(key, Ct), p => p.NodeId == announcer.NodeId);
        TestContext.Current.SendDiagnosticMessage($"restarted node rejoined with {known} contacts; total {clock.Elapsed.TotalSeconds:0.0} s");
    }
}
