using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Identity;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Dht;

/// <summary>Per-key admission in the provider and record stores: a flood from one address never keeps another announce out.</summary>
public class StoreAdmissionTests
{
    private static readonly IPAddress Attacker = IPAddress.Parse("192.0.2.66");
    private static readonly IPAddress Honest = IPAddress.Parse("198.51.100.7");

    [Fact]
    public void ProvidersFromOneAddressDisplaceOnlyTheirOwn()
    {
        var time = new ManualTimeProvider();
        var store = new ProviderStore(new DhtOptions { TimeProvider = time });
        var key = Hash256.Random();
        for (int port = 1000; port < 1128; port++)
        {
            Assert.Equal(DhtStatus.Ok, store.Add(key, Hash256.Random(), new IPEndPoint(Attacker, port), ProviderHoldings.Complete(1)));
            time.Advance(TimeSpan.FromMilliseconds(10));
        }
        Assert.Equal(new DhtOptions().MaxProvidersPerSource, store.Count); // the flood kept only its newest
        var honestId = Hash256.Random();
        Assert.Equal(DhtStatus.Ok, store.Add(key, honestId, new IPEndPoint(Honest, 7400), ProviderHoldings.Complete(1)));
        // Every read hands out one record per address first: the honest provider is always among the first two.
        for (int i = 0; i < 20; i++)
            Assert.Contains(store.Get(key).Take(2), p => p.NodeId == honestId);
        // More flooding afterwards still only replaces the attacker's own records.
        for (int port = 2000; port < 2100; port++) store.Add(key, Hash256.Random(), new IPEndPoint(Attacker, port), ProviderHoldings.Complete(1));
        Assert.Contains(store.Get(key), p => p.NodeId == honestId);
    }

    [Fact]
    public void LoopbackIsOneSourceLikeAnyAddressAndTheNewestAnnounceReplacesItsOldest()
    {
        var time = new ManualTimeProvider();
        var options = new DhtOptions { TimeProvider = time };
        var store = new ProviderStore(options);
        var key = Hash256.Random();
        // 128 announces from one loopback socket and from many loopback ports: one source either way.
        for (int port = 1000; port < 1128; port++)
        {
            var from = new IPEndPoint(IPAddress.Loopback, port % 2 == 0 ? 5000 : port);
            store.Add(key, Hash256.Random(), new IPEndPoint(IPAddress.Loopback, port), ProviderHoldings.Complete(1), from);
            time.Advance(TimeSpan.FromMilliseconds(10));
        }
        Assert.Equal(options.MaxProvidersPerSource, store.Count);
        var honestId = Hash256.Random();
        Assert.Equal(DhtStatus.Ok, store.Add(key, honestId, new IPEndPoint(IPAddress.Loopback, 7400), ProviderHoldings.Complete(1), new IPEndPoint(IPAddress.Loopback, 6000)));
        Assert.Equal(honestId, store.Get(key)[0].NodeId); // freshest of its address first
        Assert.Equal(options.MaxProvidersPerSource, store.Count);
    }

    [Fact]
    public void WithLoopbackAsHostsEachLoopbackSocketIsItsOwnSource()
    {
        var time = new ManualTimeProvider();
        var options = new DhtOptions { TimeProvider = time, LoopbackAsHosts = true };
        var store = new ProviderStore(options);
        var key = Hash256.Random();
        // Forty nodes on 127.0.0.1, each announcing from its own UDP socket: all are kept.
        for (int i = 0; i < 40; i++)
            Assert.Equal(DhtStatus.Ok, store.Add(key, Hash256.Random(), new IPEndPoint(IPAddress.Loopback, 7000 + i), ProviderHoldings.Complete(1), new IPEndPoint(IPAddress.Loopback, 9000 + i)));
        Assert.Equal(40, store.Count);
        // One socket announcing many TCP ports is still one source.
        for (int port = 20_000; port < 20_100; port++)
        {
            store.Add(key, Hash256.Random(), new IPEndPoint(IPAddress.Loopback, port), ProviderHoldings.Complete(1), new IPEndPoint(IPAddress.Loopback, 9999));
            time.Advance(TimeSpan.FromMilliseconds(10));
        }
        Assert.Equal(40 + options.MaxProvidersPerSource, store.Count);
    }

    [Fact]
    public void AFullKeyOfDistinctAddressesRefusesANewcomerInsteadOfChurning()
    {
        var store = new ProviderStore(new DhtOptions { MaxProvidersPerKey = 3 });
        var key = Hash256.Random();
        for (int i = 1; i <= 3; i++) Assert.Equal(DhtStatus.Ok, store.Add(key, Hash256.Random(), new IPEndPoint(IPAddress.Parse($"192.0.2.{i}"), 7400), ProviderHoldings.Complete(1)));
        Assert.Equal(DhtStatus.StoreFull, store.Add(key, Hash256.Random(), new IPEndPoint(IPAddress.Parse("192.0.2.9"), 7400), ProviderHoldings.Complete(1)));
        // But an address holding two of the slots gives one up.
        var store2 = new ProviderStore(new DhtOptions { MaxProvidersPerKey = 3 });
        store2.Add(key, Hash256.Random(), new IPEndPoint(Attacker, 1), ProviderHoldings.Complete(1));
        store2.Add(key, Hash256.Random(), new IPEndPoint(Attacker, 2), ProviderHoldings.Complete(1));
        store2.Add(key, Hash256.Random(), new IPEndPoint(IPAddress.Parse("192.0.2.1"), 7400), ProviderHoldings.Complete(1));
        Assert.Equal(DhtStatus.Ok, store2.Add(key, Hash256.Random(), new IPEndPoint(Honest, 7400), ProviderHoldings.Complete(1)));
        Assert.Single(store2.Get(key), p => p.EndPoint.Address.Equals(Attacker));
    }

    [Fact]
    public void RecordsFromMintedPublishersBehindOneAddressNeverCrowdOutAnotherAddress()
    {
        var time = new ManualTimeProvider();
        var options = new DhtOptions { TimeProvider = time };
        var store = new RecordStore(options);
        var key = Hash256.Random();
        var expires = time.GetUtcNow().AddHours(2);
        for (int i = 0; i < 40; i++)
        {
            using var minted = NodeKey.Generate();
            // Sequence numbers as high as the attacker likes: they order nothing across publishers.
            Assert.Equal(DhtStatus.Ok, store.Put(SignedRecord.Create(minted, key, "evil"u8, long.MaxValue / 2, expires), new IPEndPoint(Attacker, 7000 + i)));
            time.Advance(TimeSpan.FromMilliseconds(10));
        }
        Assert.Equal(options.MaxRecordsPerSource, store.Get(key).Count);
        using var honest = NodeKey.Generate();
        Assert.Equal(DhtStatus.Ok, store.Put(SignedRecord.Create(honest, key, "good"u8, 1, expires), new IPEndPoint(Honest, 7000)));
        var records = store.Get(key);
        Assert.Equal(honest.NodeId, records[0].Publisher); // the most recently stored address first
        // On one shared address (loopback) the honest record replaces the oldest of that address instead of being refused.
        var shared = new RecordStore(options);
        for (int i = 0; i < 40; i++)
        {
            using var minted = NodeKey.Generate();
            shared.Put(SignedRecord.Create(minted, key, "evil"u8, 5, expires), new IPEndPoint(IPAddress.Loopback, 7000 + i));
            time.Advance(TimeSpan.FromMilliseconds(10));
        }
        Assert.Equal(DhtStatus.Ok, shared.Put(SignedRecord.Create(honest, key, "good"u8, 1, expires), new IPEndPoint(IPAddress.Loopback, 8000)));
        Assert.Equal(honest.NodeId, shared.Get(key)[0].Publisher);
    }
}
