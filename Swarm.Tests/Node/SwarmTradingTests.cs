using Swarm.Core.Sources;
using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Dht;
using Swarm.Core.Exchange;
using Swarm.Core.Storage;
using Swarm.Node;
using Swarm.Tests.Support;

namespace Swarm.Tests.Node;

/// <summary>Whole swarms in one process: real sockets on loopback, the DHT for discovery, per-node rate limits.</summary>
[Collection(DhtNetworkCollection.Name)] // heavy: runs alone, like the big DHT tests
public class SwarmTradingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TwelveNodesStartedAtOnceTradeAmongThemselvesAndTheSeedSendsLittleMoreThanOneCopy()
    {
        const int nodes = 12;
        const long rate = 8L * 1024 * 1024;
        const int size = 16 * 1024 * 1024;
        using var dir = new TempDirectory();
        string source = dir.WriteRandomFile("content.bin", size);
        var engine = new EngineOptions
        {
            UploadRate = rate,
            DownloadRate = rate,
            ChokeInterval = TimeSpan.FromSeconds(1),
            OptimisticInterval = TimeSpan.FromSeconds(3),
            StallTimeout = TimeSpan.FromSeconds(60),
        };
        // Every node on 127.0.0.1: each counts as its own host for the DHT's per-address limits.
        var dht = new DhtOptions { HoldingsUpdateDelay = TimeSpan.FromMilliseconds(200), RpcTimeout = TimeSpan.FromMilliseconds(500), LoopbackAsHosts = true };
        var loopback = new IPEndPoint(IPAddress.Loopback, 0);

        await using var seed = await LocalNode.StartAsync(dir.Combine("seed"), engine, NullLogger.Instance, loopback, [], Ct, dht);
        StoredContent content = await Ingest.FileAsync(seed.Store, source, seed.Key, null, Ct);
        var id = content.Id;
        var getters = new List<LocalNode>();
        try
        {
            for (int i = 0; i < nodes; i++)
                getters.Add(await LocalNode.StartAsync(dir.Combine($"n{i}"), engine, NullLogger.Instance, loopback, [seed.EndPoint!], Ct, dht));
            await seed.ServeAsync(content, Ct);

            var downloads = getters.Select(g => g.Engine.DownloadAsync(id, [], null, Ct, g.Discovery)).ToList();
            var all = await Task.WhenAll(downloads).WaitAsync(TimeSpan.FromSeconds(90), Ct);

            var expected = File.ReadAllBytes(source);
            for (int i = 0; i < nodes; i++)
            {
                string output = dir.Combine($"out{i}.bin");
                all[i].Export(output);
                Assert.Equal(expected, File.ReadAllBytes(output));
            }
            long seedUploaded = seed.Engine.Find(id)!.BytesUploaded;
            long fromPeers = getters.Sum(g => g.Engine.Find(id)!.BytesFromPeers);
            var sent = seed.Engine.Find(id)!.SentCounts;
            string histogram = string.Join(", ", sent.GroupBy(c => c).OrderBy(g => g.Key).Select(g => $"{g.Key}x: {g.Count()} pieces"));
            Assert.True(seedUploaded <= 1.5 * size, $"the seed uploaded {seedUploaded / (double)size:0.00}x the content size (pieces handed out {histogram}); getters received {fromPeers / (double)size:0.00}x");
        }
        finally
        {
            foreach (var g in getters) await g.DisposeAsync();
        }
    }
}
