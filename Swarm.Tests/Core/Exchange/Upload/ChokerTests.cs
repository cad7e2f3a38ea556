using Swarm.Core.Exchange.Upload;

namespace Swarm.Tests.Core.Exchange.Upload;

public class ChokerTests
{
    private sealed record Peer(string Name, double Rate);

    [Fact]
    public void UnchokesTheFourBestByRankPlusOneOptimistic()
    {
        var peers = Enumerable.Range(0, 10).Select(i => new Peer($"p{i}", i)).ToList();
        var choker = new Choker<Peer>(4, 1, TimeSpan.FromSeconds(30), new Random(1));

        var chosen = choker.Decide(peers, p => p.Rate, nowMs: 0);

        Assert.Equal(5, chosen.Count);
        foreach (var best in peers.OrderByDescending(p => p.Rate).Take(4)) Assert.Contains(best, chosen);
        var optimistic = Assert.Single(choker.Optimistic);
        Assert.True(optimistic.Rate < 6, "the optimistic slot goes to a peer outside the top four");
    }

    [Fact]
    public void OptimisticSlotStaysUntilRotationThenMoves()
    {
        var peers = Enumerable.Range(0, 30).Select(i => new Peer($"p{i}", i)).ToList();
        var choker = new Choker<Peer>(4, 1, TimeSpan.FromSeconds(30), new Random(7));
        choker.Decide(peers, p => p.Rate, 0);
        var first = choker.Optimistic[0];

        choker.Decide(peers, p => p.Rate, 10_000);
        Assert.Same(first, choker.Optimistic[0]);

        var seen = new HashSet<Peer>();
        for (int round = 1; round <= 10; round++)
        {
            choker.Decide(peers, p => p.Rate, round * 30_000);
            seen.Add(choker.Optimistic[0]);
        }
        Assert.True(seen.Count > 3, "rotation must move the optimistic slot among peers");
    }

    [Fact]
    public void FewerPeersThanSlotsAreAllUnchoked()
    {
        var peers = new List<Peer> { new("a", 0), new("b", 0) };
        var chosen = new Choker<Peer>(4, 1, TimeSpan.FromSeconds(30)).Decide(peers, p => p.Rate, 0);
        Assert.Equal(2, chosen.Count);
    }

    [Fact]
    public void RoundRobinRankServesThePeersThatReceivedLeast()
    {
        var uploaded = new Dictionary<string, long> { ["a"] = 900, ["b"] = 10, ["c"] = 500, ["d"] = 0, ["e"] = 20, ["f"] = 700 };
        var peers = uploaded.Keys.Select(k => new Peer(k, 0)).ToList();
        var chosen = new Choker<Peer>(4, 0, TimeSpan.FromSeconds(30)).Decide(peers, p => -uploaded[p.Name], 0);
        Assert.Equal(["b", "c", "d", "e"], chosen.Select(p => p.Name).Order());
    }
}
