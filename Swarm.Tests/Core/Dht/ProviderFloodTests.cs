using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Dht;

/// <summary>A flood of provider announces from one address, over real UDP, against a live node.</summary>
[Collection(DhtNetworkCollection.Name)]
public class ProviderFloodTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task AnHonestAnnounceAfter128FloodedOnesIsStoredAndFound()
    {
        await using var victim = new TestDhtNode(DhtTestOptions.Fast);
        var key = Hash256.Random();

        // The attacker: one socket on 127.0.0.1, a valid token, 128 announces that differ only in the TCP port.
        using var attacker = new RawDhtPeer();
        var answer = await attacker.RequestAsync(victim.EndPoint, new GetProvidersRequest(key), Wait);
        var token = Assert.IsType<ProvidersResponse>(answer).Token;
        for (int i = 0; i < 128; i++) attacker.Send(victim.EndPoint, new AddProviderRequest(key, token, 20_000 + i, ProviderHoldings.Complete(4)), (ulong)(1000 + i));
        await Poll.UntilAsync(() => victim.Node.GetStats().ProvidersHeld >= victim.Node.Options.MaxProvidersPerSource, Wait, "the flood to be stored");

        // The honest seed, on another address, announces afterwards through the victim (the only other node, so it stores the record).
        await using var seed = new TestDhtNode(DhtTestOptions.Fast, address: IPAddress.Parse("127.0.0.2"));
        Assert.True(await seed.Node.BootstrapAsync([victim.EndPoint], Ct) > 0);
        int stored = await seed.Node.AnnounceAsync(key, 7400, ProviderHoldings.Complete(4), Ct);
        Assert.True(stored >= 1, $"the honest announce was stored on {stored} nodes");
        // The victim itself holds it (the seed also keeps its own record, which must not be what makes this pass), and
        // hands it out in the first response despite the flood.
        var held = Assert.IsType<ProvidersResponse>(await attacker.RequestAsync(victim.EndPoint, new GetProvidersRequest(key), Wait));
        Assert.Contains(held.Providers, p => p.NodeId == seed.Id && p.EndPoint.Port == 7400);

        // A node that joins now finds the honest provider among the flood.
        await using var newcomer = new TestDhtNode(DhtTestOptions.Fast, address: IPAddress.Parse("127.0.0.3"));
        Assert.True(await newcomer.Node.BootstrapAsync([victim.EndPoint], Ct) > 0);
        var providers = await newcomer.Node.FindProvidersAsync(key, Ct);
        Assert.Contains(providers, p => p.NodeId == seed.Id && p.EndPoint.Port == 7400);
        Assert.True(victim.Node.GetStats().ProvidersHeld <= victim.Node.Options.MaxProvidersPerSource + 1);
    }
}
