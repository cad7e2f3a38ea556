using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Dht;

public class RoutingTableTests
{
    private static readonly Hash256 Self = Hash256.Of([1, 2, 3]);
    private static int _port = 10_000;
    private static int _host;

    /// <summary>A contact in <paramref name="bucket"/>; by default each at an address of its own /24 (10.x.y.1), so the subnet limit never applies.</summary>
    private static Contact ContactIn(int bucket, IPAddress? address = null) =>
        new(DhtAddress.RandomIdInBucket(Self, bucket), new IPEndPoint(address ?? NextHost(), Interlocked.Increment(ref _port)));

    private static IPAddress NextHost()
    {
        int n = Interlocked.Increment(ref _host);
        return new IPAddress([10, (byte)(n >> 8), (byte)n, 1]);
    }

    private static (RoutingTable Table, ManualTimeProvider Time) NewTable(DhtOptions? options = null)
    {
        var time = new ManualTimeProvider();
        var o = (options ?? new DhtOptions()) with { TimeProvider = time };
        return (new RoutingTable(Self, o), time);
    }

    [Fact]
    public void ContactsGoToTheBucketOfTheirSharedPrefixLength()
    {
        var (table, _) = NewTable();
        for (int bucket = 0; bucket < 256; bucket += 17)
        {
            var c = ContactIn(bucket);
            Assert.Equal(bucket, DhtAddress.BucketIndex(Self, c.Id));
            Assert.Equal(AddOutcome.Added, table.Observe(c).Outcome);
            Assert.Contains(c, table.BucketContents(bucket));
        }
        Assert.Equal(16, table.Count);
        Assert.All(table.BucketCounts(), b => Assert.Equal(1, b.Count));
        Assert.Equal(AddOutcome.Rejected, table.Observe(new Contact(Self, new IPEndPoint(IPAddress.Loopback, 1))).Outcome);
    }

    [Fact]
    public void ObservingAKnownContactMovesItToTheMostRecentEnd()
    {
        var (table, _) = NewTable();
        var a = ContactIn(0);
        var b = ContactIn(0);
        table.Observe(a);
        table.Observe(b);
        Assert.Equal([a, b], table.BucketContents(0));
        Assert.Equal(AddOutcome.Updated, table.Observe(a).Outcome);
        Assert.Equal([b, a], table.BucketContents(0));
    }

    [Fact]
    public void FullBucketPingsTheLeastRecentlySeenAndEvictsItOnlyIfItDoesNotAnswer()
    {
        var (table, time) = NewTable();
        var first = Enumerable.Range(0, 20).Select(_ => ContactIn(0)).ToList();
        foreach (var c in first) Assert.Equal(AddOutcome.Added, table.Observe(c).Outcome);

        // Everyone was seen just now: a newcomer waits in the replacement cache, nobody is pinged.
        var newcomer = ContactIn(0);
        Assert.Equal(AddOutcome.Cached, table.Observe(newcomer).Outcome);
        Assert.DoesNotContain(newcomer, table.BucketContents(0));

        // Later the oldest is questionable: ping it before evicting; it answers, so it stays and the newcomer does not get in.
        time.Advance(TimeSpan.FromMinutes(16));
        var result = table.Observe(newcomer);
        Assert.Equal(AddOutcome.PingNeeded, result.Outcome);
        Assert.Equal(first[0], result.ToPing);
        Assert.Equal(AddOutcome.Cached, table.Observe(ContactIn(0)).Outcome); // one ping per bucket at a time
        table.ResolvePing(first[0], answered: true);
        var bucket = table.BucketContents(0);
        Assert.Equal(20, bucket.Count);
        Assert.Equal(first[0], bucket[^1]);
        Assert.DoesNotContain(newcomer, bucket);

        // The next oldest does not answer: it is evicted and the most recent replacement takes its place.
        var again = table.Observe(newcomer);
        Assert.Equal(AddOutcome.PingNeeded, again.Outcome);
        Assert.Equal(first[1], again.ToPing);
        table.ResolvePing(first[1], answered: false);
        bucket = table.BucketContents(0);
        Assert.Equal(20, bucket.Count);
        Assert.DoesNotContain(first[1], bucket);
        Assert.Contains(newcomer, bucket);
    }

    [Fact]
    public void RepeatedFailuresReplaceANodeWhenAReplacementIsKnown()
    {
        var (table, _) = NewTable(new DhtOptions { MaxFailures = 2 });
        var members = Enumerable.Range(0, 20).Select(_ => ContactIn(1)).ToList();
        foreach (var c in members) table.Observe(c);
        var spare = ContactIn(1);
        Assert.Equal(AddOutcome.Cached, table.Observe(spare).Outcome);

        table.RecordFailure(members[5].Id);
        Assert.Contains(members[5], table.BucketContents(1));
        table.RecordFailure(members[5].Id);
        Assert.DoesNotContain(members[5], table.BucketContents(1));
        Assert.Contains(spare, table.BucketContents(1));
    }

    [Fact]
    public void FailedNodeWithoutReplacementStaysButIsNotHandedOut()
    {
        var (table, _) = NewTable(new DhtOptions { MaxFailures = 2 });
        var a = ContactIn(3);
        table.Observe(a);
        table.RecordFailure(a.Id);
        table.RecordFailure(a.Id);
        Assert.Equal(1, table.Count);
        Assert.Empty(table.Closest(a.Id, 20));
        Assert.Equal(AddOutcome.Updated, table.Observe(a).Outcome); // it answered again
        Assert.Single(table.Closest(a.Id, 20));
    }

    [Fact]
    public void AtMostTwoNodesPerSlash24InABucketForPublicAddresses()
    {
        var (table, _) = NewTable();
        var a = ContactIn(0, IPAddress.Parse("203.0.113.5"));
        var b = ContactIn(0, IPAddress.Parse("203.0.113.77"));
        var c = ContactIn(0, IPAddress.Parse("203.0.113.200"));
        var other = ContactIn(0, IPAddress.Parse("203.0.114.1"));
        var otherBucket = ContactIn(1, IPAddress.Parse("203.0.113.9"));
        Assert.Equal(AddOutcome.Added, table.Observe(a).Outcome);
        Assert.Equal(AddOutcome.Added, table.Observe(b).Outcome);
        Assert.Equal(AddOutcome.Rejected, table.Observe(c).Outcome);
        Assert.Equal(AddOutcome.Added, table.Observe(other).Outcome);
        Assert.Equal(AddOutcome.Added, table.Observe(otherBucket).Outcome); // the limit is per bucket
    }

    [Fact]
    public void AtMostTwoNodesPerSlash48InABucketForIPv6()
    {
        var (table, _) = NewTable();
        Assert.Equal(AddOutcome.Added, table.Observe(ContactIn(0, IPAddress.Parse("2001:db8:1:1::1"))).Outcome);
        Assert.Equal(AddOutcome.Added, table.Observe(ContactIn(0, IPAddress.Parse("2001:db8:1:2::1"))).Outcome);
        Assert.Equal(AddOutcome.Rejected, table.Observe(ContactIn(0, IPAddress.Parse("2001:db8:1:ffff::1"))).Outcome);
        Assert.Equal(AddOutcome.Added, table.Observe(ContactIn(0, IPAddress.Parse("2001:db8:2::1"))).Outcome);
    }

    [Fact]
    public void LoopbackIsASubnetLikeAnyOtherUnlessLoopbackAsHosts()
    {
        var (table, _) = NewTable();
        Assert.Equal(AddOutcome.Added, table.Observe(ContactIn(0, IPAddress.Loopback)).Outcome);
        Assert.Equal(AddOutcome.Added, table.Observe(ContactIn(0, IPAddress.Parse("127.0.0.2"))).Outcome);
        Assert.Equal(AddOutcome.Rejected, table.Observe(ContactIn(0, IPAddress.Parse("127.0.0.3"))).Outcome);
        Assert.Equal(AddOutcome.Rejected, table.Observe(ContactIn(0, IPAddress.Loopback)).Outcome); // another port of 127.0.0.1
        Assert.Equal(AddOutcome.Added, table.Observe(ContactIn(0, IPAddress.Parse("127.0.1.1"))).Outcome); // another /24
        Assert.Equal(AddOutcome.Added, table.Observe(ContactIn(2, IPAddress.IPv6Loopback)).Outcome);
        Assert.Equal(AddOutcome.Added, table.Observe(ContactIn(2, IPAddress.IPv6Loopback)).Outcome);
        Assert.Equal(AddOutcome.Rejected, table.Observe(ContactIn(2, IPAddress.IPv6Loopback)).Outcome);

        var (asHosts, _) = NewTable(new DhtOptions { LoopbackAsHosts = true });
        for (int i = 0; i < 20; i++) Assert.Equal(AddOutcome.Added, asHosts.Observe(ContactIn(0, IPAddress.Loopback)).Outcome);
        Assert.Equal(20, asHosts.BucketContents(0).Count);
        for (int i = 0; i < 5; i++) Assert.Equal(AddOutcome.Added, asHosts.Observe(ContactIn(2, IPAddress.IPv6Loopback)).Outcome);
        // Other addresses keep the limit.
        Assert.Equal(AddOutcome.Added, asHosts.Observe(ContactIn(3, IPAddress.Parse("203.0.113.1"))).Outcome);
        Assert.Equal(AddOutcome.Added, asHosts.Observe(ContactIn(3, IPAddress.Parse("203.0.113.2"))).Outcome);
        Assert.Equal(AddOutcome.Rejected, asHosts.Observe(ContactIn(3, IPAddress.Parse("203.0.113.3"))).Outcome);
    }

    [Fact]
    public void SameIdFromAnotherAddressDoesNotDisplaceALiveNode()
    {
        var (table, _) = NewTable();
        var real = ContactIn(4);
        table.Observe(real);
        var impostor = real with { EndPoint = new IPEndPoint(IPAddress.Loopback, 1) };
        Assert.Equal(AddOutcome.Rejected, table.Observe(impostor).Outcome);
        Assert.Equal([real], table.BucketContents(4));
    }

    [Fact]
    public void ClosestReturnsTheKNearestByXorDistanceInOrder()
    {
        var (table, _) = NewTable();
        var all = new List<Contact>();
        for (int i = 0; i < 400; i++)
        {
            var c = new Contact(Hash256.Random(), new IPEndPoint(NextHost(), 20_000 + i));
            if (table.Observe(c).Outcome == AddOutcome.Added) all.Add(c);
        }
        for (int trial = 0; trial < 20; trial++)
        {
            var target = Hash256.Random();
            var expected = all.OrderBy(c => target.Xor(c.Id)).Take(20).ToList();
            Assert.Equal(expected, table.Closest(target, 20));
        }
        var exclude = all[0].Id;
        Assert.DoesNotContain(all[0], table.Closest(exclude, 20, exclude));
    }

    [Fact]
    public void RandomIdInBucketHasExactlyThatSharedPrefix()
    {
        for (int bucket = 0; bucket < 256; bucket++)
            Assert.Equal(bucket, DhtAddress.BucketIndex(Self, DhtAddress.RandomIdInBucket(Self, bucket)));
    }

    [Fact]
    public void RefreshCoversStaleBucketsUpToTheDeepest()
    {
        var (table, time) = NewTable();
        table.Observe(ContactIn(0));
        table.Observe(ContactIn(5));
        Assert.Empty(table.BucketsNeedingRefresh(TimeSpan.FromMinutes(10)));
        time.Advance(TimeSpan.FromMinutes(11));
        table.MarkActivity(DhtAddress.RandomIdInBucket(Self, 3));
        Assert.Equal([0, 1, 2, 4, 5, 6], table.BucketsNeedingRefresh(TimeSpan.FromMinutes(10)));
    }
}
