using System.Diagnostics;
using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Identity;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Dht;

/// <summary>A few nodes and raw UDP peers on loopback: RPCs, tokens, signed records, persistence.</summary>
public class DhtNodeTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    /// <summary>Nodes sharing 127.0.0.1, so they need <see cref="DhtTestOptions.LoopbackSwarm"/> (checked).</summary>
    private static async Task<List<TestDhtNode>> NetworkAsync(int count, DhtOptions? options = null)
    {
        options ??= DhtTestOptions.LoopbackSwarm;
        Assert.True(options.LoopbackAsHosts, "nodes sharing 127.0.0.1 are one host to each other without LoopbackAsHosts");
        var nodes = Enumerable.Range(0, count).Select(_ => new TestDhtNode(options)).ToList();
        foreach (var n in nodes.Skip(1)) await n.Node.BootstrapAsync([nodes[0].EndPoint], Ct);
        return nodes;
    }

    private static async Task DisposeAllAsync(IEnumerable<TestDhtNode> nodes)
    {
        foreach (var n in nodes) await n.DisposeAsync();
    }

    [Fact]
    public async Task PingReturnsTheIdAndBothSidesLearnEachOtherOnlyByAnswers()
    {
        await using var a = new TestDhtNode(DhtTestOptions.Fast);
        await using var b = new TestDhtNode(DhtTestOptions.Fast);
        Assert.Equal(b.Id, await a.Node.PingAsync(b.EndPoint, Ct));
        Assert.True(a.Node.RoutingTable.Contains(b.Id)); // b answered a
        // b saw a request from a; it pings a back, and a's answer lets a into b's table.
        await Poll.UntilAsync(() => b.Node.RoutingTable.Contains(a.Id), Wait, "b to verify a");
        Assert.Equal(b.EndPoint, b.Node.GetStats().LocalEndPoint);
        Assert.Equal(a.EndPoint, a.Node.GetStats().ExternalEndPoint); // what b saw
    }

    [Fact]
    public async Task ARequesterThatDoesNotAnswerOurPingNeverEntersTheTable()
    {
        await using var node = new TestDhtNode(DhtTestOptions.Fast);
        using var liar = new RawDhtPeer();
        var answer = await liar.RequestAsync(node.EndPoint, new FindNodeRequest(Hash256.Random()), Wait);
        Assert.IsType<NodesResponse>(answer);
        // The node pings the requester back; the raw peer gets the ping and ignores it.
        var ping = await liar.ReceiveAsync(Wait);
        Assert.NotNull(ping);
        Assert.Equal(DhtMessageKind.Ping, ping.Value.Header.Kind);
        await Poll.UntilAsync(() => node.Node.GetStats().RpcsTimedOut >= 1, Wait, "the verification ping to time out");
        Assert.False(node.Node.RoutingTable.Contains(liar.Id));
        Assert.Equal(0, node.Node.GetStats().RoutingTableSize);
    }

    [Fact]
    public async Task FindNodeOnASmallNetworkReturnsEveryoneSorted()
    {
        var nodes = await NetworkAsync(12);
        try
        {
            foreach (var n in nodes)
            {
                var target = Hash256.Random();
                var found = await n.Node.FindNodeAsync(target, Ct);
                var expected = nodes.Where(x => x != n).Select(x => x.Id).OrderBy(id => target.Xor(id)).ToList();
                Assert.Equal(expected, found.Select(c => c.Id));
            }
        }
        finally { await DisposeAllAsync(nodes); }
    }

    [Fact]
    public async Task AnnouncedProvidersAreFoundWithTheirHoldings()
    {
        var nodes = await NetworkAsync(10);
        try
        {
            var key = Hash256.Random();
            var holdings = ProviderHoldings.Partial(12, 100);
            int stored = await nodes[3].Node.AnnounceAsync(key, 7400, holdings, Ct);
            Assert.True(stored >= 9, $"stored on {stored} nodes");
            foreach (var n in nodes)
            {
                var p = Assert.Single(await n.Node.FindProvidersAsync(key, Ct));
                Assert.Equal(nodes[3].Id, p.NodeId);
                Assert.Equal(new IPEndPoint(IPAddress.Loopback, 7400), p.EndPoint);
                Assert.Equal(12, p.Holdings.VerifiedPieces);
                Assert.Equal(100, p.Holdings.TotalPieces);
            }
            Assert.Equal(1, nodes[3].Node.GetStats().Announcements);
            Assert.Empty(await nodes[0].Node.FindProvidersAsync(Hash256.Random(), Ct));
        }
        finally { await DisposeAllAsync(nodes); }
    }

    [Fact]
    public async Task ProvidersReannounceUntilWithdrawnThenExpire()
    {
        var options = DhtTestOptions.LoopbackSwarm with
        {
            ReannounceInterval = TimeSpan.FromMilliseconds(300),
            ProviderTtl = TimeSpan.FromSeconds(1),
            HoldingsUpdateDelay = TimeSpan.FromMilliseconds(100),
        };
        var nodes = await NetworkAsync(6, options);
        try
        {
            var key = Hash256.Random();
            await nodes[1].Node.AnnounceAsync(key, 7401, ProviderHoldings.Partial(1, 10), Ct);
            // Updated holdings reach the network by the periodic announce; the record outlives its TTL because it is refreshed.
            Assert.True(nodes[1].Node.UpdateHoldings(key, ProviderHoldings.Complete(10)));
            await DhtPoll.UntilAsync(async () => await nodes[4].Node.FindProvidersAsync(key, Ct) is [{ Holdings.IsComplete: true }], Wait, "the updated holdings");
            await Task.Delay(options.ProviderTtl * 1.5, Ct);
            Assert.NotEmpty(await nodes[4].Node.FindProvidersAsync(key, Ct));

            Assert.True(nodes[1].Node.Withdraw(key));
            Assert.False(nodes[1].Node.Withdraw(key));
            await DhtPoll.UntilAsync(async () =>
            {
                foreach (var n in nodes)
                    if ((await n.Node.FindProvidersAsync(key, Ct)).Count > 0) return false;
                return true;
            }, Wait, "the records to expire");
        }
        finally { await DisposeAllAsync(nodes); }
    }

    [Fact]
    public async Task AddProviderNeedsATokenIssuedToTheSameAddress()
    {
        await using var node = new TestDhtNode(DhtTestOptions.Fast);
        using var peer = new RawDhtPeer(IPAddress.Loopback);
        using var other = new RawDhtPeer(IPAddress.Parse("127.0.0.2"));
        var key = Hash256.Random();
        var holdings = ProviderHoldings.Complete(4);

        var noToken = await peer.RequestAsync(node.EndPoint, new AddProviderRequest(key, new byte[DhtLimits.TokenLength], 7400, holdings), Wait);
        Assert.Equal(DhtStatus.BadToken, Assert.IsType<StatusResponse>(noToken).Status);

        var got = Assert.IsType<ProvidersResponse>(await peer.RequestAsync(node.EndPoint, new GetProvidersRequest(key), Wait));
        Assert.Empty(got.Providers);
        // The token is bound to 127.0.0.1: from 127.0.0.2 it is refused.
        var stolen = await other.RequestAsync(node.EndPoint, new AddProviderRequest(key, got.Token, 7400, holdings), Wait);
        Assert.Equal(DhtStatus.BadToken, Assert.IsType<StatusResponse>(stolen).Status);
        var ok = await peer.RequestAsync(node.EndPoint, new AddProviderRequest(key, got.Token, 7400, holdings), Wait);
        Assert.Equal(DhtStatus.Ok, Assert.IsType<StatusResponse>(ok).Status);

        var after = Assert.IsType<ProvidersResponse>(await other.RequestAsync(node.EndPoint, new GetProvidersRequest(key), Wait));
        var p = Assert.Single(after.Providers);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 7400), p.EndPoint); // the datagram's source IP, the message's TCP port
        Assert.Equal(peer.Id, p.NodeId);
        Assert.Equal(1, node.Node.GetStats().ProvidersHeld);
    }

    [Fact]
    public void TokensExpireAfterTwoRotations()
    {
        var time = new ManualTimeProvider();
        var tokens = new AnnounceTokens(TimeSpan.FromMinutes(5), time);
        var ip = IPAddress.Parse("192.0.2.10");
        var token = tokens.Issue(ip);
        Assert.True(tokens.Validate(ip, token));
        Assert.False(tokens.Validate(IPAddress.Parse("192.0.2.11"), token));
        time.Advance(TimeSpan.FromMinutes(6));
        Assert.True(tokens.Validate(ip, token)); // previous secret
        time.Advance(TimeSpan.FromMinutes(5));
        Assert.False(tokens.Validate(ip, token));
        Assert.False(tokens.Validate(ip, new byte[3]));
    }

    [Fact]
    public async Task SignedRecordsAreVerifiedAndTheHighestSequenceWins()
    {
        var nodes = await NetworkAsync(8);
        try
        {
            var writer = nodes[2].Node;
            var key = Hash256.Random();
            var v1 = writer.CreateRecord(key, "content-id-1"u8, 1, DateTimeOffset.UtcNow.AddMinutes(10));
            Assert.True(await writer.PutAsync(v1, Ct) >= 7);
            var got = Assert.Single(await nodes[6].Node.GetAsync(key, null, Ct));
            Assert.Equal("content-id-1"u8.ToArray(), got.Value.ToArray());
            Assert.Equal(writer.NodeId, got.Publisher);

            var v2 = writer.CreateRecord(key, "content-id-2"u8, 2, DateTimeOffset.UtcNow.AddMinutes(10));
            Assert.True(await writer.PutAsync(v2, Ct) >= 7);
            Assert.Equal(2, Assert.Single(await nodes[5].Node.GetAsync(key, writer.NodeId, Ct)).Sequence);
            // Putting the old sequence again is refused everywhere.
            Assert.Equal(0, await writer.PutAsync(v1, Ct));
            Assert.Equal(2, Assert.Single(await nodes[0].Node.GetAsync(key, null, Ct)).Sequence);

            // Another publisher under the same key is kept alongside.
            var other = nodes[4].Node.CreateRecord(key, "lease"u8, 1, DateTimeOffset.UtcNow.AddMinutes(1));
            await nodes[4].Node.PutAsync(other, Ct);
            var both = await nodes[7].Node.GetAsync(key, null, Ct);
            Assert.Equal(2, both.Count);
        }
        finally { await DisposeAllAsync(nodes); }
    }

    [Fact]
    public async Task RecordWithABadSignatureIsRefused()
    {
        await using var node = new TestDhtNode(DhtTestOptions.Fast);
        using var peer = new RawDhtPeer();
        using var key = NodeKey.Generate();
        var recordKey = Hash256.Random();
        var good = SignedRecord.Create(key, recordKey, "v"u8, 5, DateTimeOffset.UtcNow.AddMinutes(5));
        var bad = new SignedRecord(recordKey, "w"u8.ToArray(), 5, good.ExpiresUnixSeconds, key.PublicKey, good.Signature.ToArray());
        var wrongKey = NodeKey.Generate();
        var alien = new SignedRecord(recordKey, "v"u8.ToArray(), 5, good.ExpiresUnixSeconds, wrongKey.PublicKey, good.Signature.ToArray());
        wrongKey.Dispose();

        var tokenReply = Assert.IsType<RecordsResponse>(await peer.RequestAsync(node.EndPoint, new GetRequest(recordKey, null), Wait));
        foreach (var forged in new[] { bad, alien })
        {
            var r = await peer.RequestAsync(node.EndPoint, new PutRequest(tokenReply.Token, forged), Wait);
            Assert.Equal(DhtStatus.BadSignature, Assert.IsType<StatusResponse>(r).Status);
        }
        var noToken = await peer.RequestAsync(node.EndPoint, new PutRequest(new byte[DhtLimits.TokenLength], good), Wait);
        Assert.Equal(DhtStatus.BadToken, Assert.IsType<StatusResponse>(noToken).Status);
        Assert.Equal(0, node.Node.GetStats().RecordsHeld);

        var ok = await peer.RequestAsync(node.EndPoint, new PutRequest(tokenReply.Token, good), Wait);
        Assert.Equal(DhtStatus.Ok, Assert.IsType<StatusResponse>(ok).Status);
        var expired = SignedRecord.Create(key, recordKey, "v"u8, 6, DateTimeOffset.UtcNow.AddMinutes(-1));
        var late = await peer.RequestAsync(node.EndPoint, new PutRequest(tokenReply.Token, expired), Wait);
        Assert.Equal(DhtStatus.Invalid, Assert.IsType<StatusResponse>(late).Status);
        Assert.Equal(1, node.Node.GetStats().RecordsHeld);
    }

    [Fact]
    public void RecordStoreKeepsTheHighestSequencePerPublisherAndStaysBounded()
    {
        var time = new ManualTimeProvider();
        var options = new DhtOptions { TimeProvider = time, MaxRecords = 3, MaxRecordsPerKey = 2, MaxRecordLifetime = TimeSpan.FromHours(1) };
        var store = new RecordStore(options);
        using var a = NodeKey.Generate();
        using var b = NodeKey.Generate();
        using var c = NodeKey.Generate();
        var key = Hash256.Random();
        var expires = time.GetUtcNow().AddHours(2);
        Assert.Equal(DhtStatus.Ok, store.Put(SignedRecord.Create(a, key, "1"u8, 1, expires)));
        Assert.Equal(DhtStatus.Ok, store.Put(SignedRecord.Create(a, key, "3"u8, 3, expires)));
        Assert.Equal(DhtStatus.StaleSequence, store.Put(SignedRecord.Create(a, key, "2"u8, 2, expires)));
        Assert.Equal(DhtStatus.StaleSequence, store.Put(SignedRecord.Create(a, key, "x"u8, 3, expires))); // same sequence, other value
        Assert.Equal(3, Assert.Single(store.Get(key)).Sequence);
        Assert.Equal(DhtStatus.Ok, store.Put(SignedRecord.Create(b, key, "b"u8, 1, expires), new IPEndPoint(IPAddress.Parse("192.0.2.2"), 7000)));
        // Per key: two publishers behind two addresses fill it, and a third address does not push either out.
        Assert.Equal(DhtStatus.StoreFull, store.Put(SignedRecord.Create(c, key, "c"u8, 1, expires), new IPEndPoint(IPAddress.Parse("192.0.2.3"), 7000)));
        Assert.Equal(DhtStatus.Ok, store.Put(SignedRecord.Create(c, Hash256.Random(), "c"u8, 1, expires)));
        Assert.Equal(DhtStatus.StoreFull, store.Put(SignedRecord.Create(c, Hash256.Random(), "d"u8, 1, expires))); // overall
        Assert.Equal(3, store.Count);
        // Lifetime is capped: after an hour everything is gone, and room is back.
        time.Advance(TimeSpan.FromMinutes(61));
        Assert.Empty(store.Get(key));
        Assert.Equal(DhtStatus.Ok, store.Put(SignedRecord.Create(c, Hash256.Random(), "e"u8, 1, time.GetUtcNow().AddMinutes(5))));
        Assert.Equal(1, store.Count);
    }

    [Fact]
    public void ProviderStoreIsBoundedAndExpires()
    {
        var time = new ManualTimeProvider();
        var options = new DhtOptions { TimeProvider = time, MaxProviderRecords = 4, MaxProvidersPerKey = 3, ProviderTtl = TimeSpan.FromMinutes(30) };
        var store = new ProviderStore(options);
        var key = Hash256.Random();
        for (int i = 0; i < 3; i++)
            Assert.Equal(DhtStatus.Ok, store.Add(key, Hash256.Random(), new IPEndPoint(IPAddress.Parse($"192.0.2.{i + 1}"), 7400), ProviderHoldings.Complete(1)));
        Assert.Equal(DhtStatus.StoreFull, store.Add(key, Hash256.Random(), new IPEndPoint(IPAddress.Parse("192.0.2.9"), 7400), ProviderHoldings.Complete(1)));
        // Re-announcing from the same endpoint replaces, it does not add.
        Assert.Equal(DhtStatus.Ok, store.Add(key, Hash256.Random(), new IPEndPoint(IPAddress.Parse("192.0.2.1"), 7400), ProviderHoldings.Partial(0, 1)));
        Assert.Equal(3, store.Count);
        Assert.Equal(DhtStatus.Ok, store.Add(Hash256.Random(), Hash256.Random(), new IPEndPoint(IPAddress.Parse("192.0.2.1"), 7400), ProviderHoldings.Complete(1)));
        Assert.Equal(DhtStatus.StoreFull, store.Add(Hash256.Random(), Hash256.Random(), new IPEndPoint(IPAddress.Parse("192.0.2.1"), 7400), ProviderHoldings.Complete(1)));
        time.Advance(TimeSpan.FromMinutes(20));
        Assert.Equal(DhtStatus.Ok, store.Add(key, Hash256.Random(), new IPEndPoint(IPAddress.Parse("192.0.2.2"), 7400), ProviderHoldings.Complete(1)));
        time.Advance(TimeSpan.FromMinutes(15));
        var left = store.Get(key);
        Assert.Equal(IPAddress.Parse("192.0.2.2"), Assert.Single(left).EndPoint.Address);
        Assert.Equal(TimeSpan.FromMinutes(15), left[0].Age);
        store.Expire();
        Assert.Equal(1, store.Count);
    }

    [Fact]
    public void RateLimiterCountsAddressesNotPortsAndLoopbackPortsOnlyWhenAsked()
    {
        var limiter = new SourceRateLimiter(new DhtOptions { RatePerSource = 1, BurstPerSource = 10 });
        var a = new IPEndPoint(IPAddress.Parse("192.0.2.1"), 1000);
        var aOtherPort = new IPEndPoint(IPAddress.Parse("192.0.2.1"), 1001);
        Assert.Equal(10, Enumerable.Range(0, 50).Count(_ => limiter.TryAcquire(a)));
        Assert.False(limiter.TryAcquire(aOtherPort)); // same IP, same budget
        Assert.True(limiter.TryAcquire(new IPEndPoint(IPAddress.Parse("192.0.2.2"), 1000)));
        // IPv6: one /64 is one source (a host has a whole /64 to pick addresses from).
        Assert.Equal(10, Enumerable.Range(0, 50).Count(i => limiter.TryAcquire(new IPEndPoint(IPAddress.Parse($"2001:db8:1:2::{i + 1:x}"), 1000))));
        Assert.True(limiter.TryAcquire(new IPEndPoint(IPAddress.Parse("2001:db8:1:3::1"), 1000)));

        // Loopback is an address like any other by default: its ports share one budget.
        var l1 = new IPEndPoint(IPAddress.Loopback, 1000);
        Assert.Equal(10, Enumerable.Range(0, 50).Count(i => limiter.TryAcquire(new IPEndPoint(IPAddress.Loopback, 1000 + i))));
        Assert.False(limiter.TryAcquire(new IPEndPoint(IPAddress.Loopback, 2000)));
        Assert.True(limiter.TryAcquire(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 1000))); // another loopback address, another host

        var asHosts = new SourceRateLimiter(new DhtOptions { RatePerSource = 1, BurstPerSource = 10, LoopbackAsHosts = true });
        Assert.Equal(10, Enumerable.Range(0, 50).Count(_ => asHosts.TryAcquire(l1)));
        Assert.True(asHosts.TryAcquire(new IPEndPoint(IPAddress.Loopback, 1001))); // each loopback port is a host
        Assert.Equal(10, Enumerable.Range(0, 50).Count(_ => asHosts.TryAcquire(a)));
        Assert.False(asHosts.TryAcquire(aOtherPort)); // other addresses still count per IP
    }

    [Fact]
    public async Task RestartedNodeRejoinsFromItsSavedRoutingTable()
    {
        using var dir = new TempDirectory();
        string path = dir.Combine("routing.bin");
        var nodes = await NetworkAsync(10);
        try
        {
            var key = Hash256.Random();
            await nodes[7].Node.AnnounceAsync(key, 7400, ProviderHoldings.Complete(3), Ct);
            var leaving = nodes[5];
            leaving.Node.SaveRoutingTable(path);
            Assert.True(File.Exists(path));
            var keyMaterial = leaving.Key;
            int port = leaving.EndPoint.Port;
            await leaving.Node.DisposeAsync();

            // Same identity, same port, no bootstrap address: only the saved contacts.
            var restarted = new DhtNode(keyMaterial, DhtTestOptions.LoopbackSwarm);
            await using (restarted)
            {
                restarted.Start(new IPEndPoint(IPAddress.Loopback, port));
                Assert.InRange(restarted.LoadRoutingTable(path), 1, 9);
                Assert.True(await restarted.BootstrapAsync([], Ct) >= 1);
                var p = Assert.Single(await restarted.FindProvidersAsync(key, Ct));
                Assert.Equal(nodes[7].Id, p.NodeId);
            }
            nodes.Remove(leaving);
            keyMaterial.Dispose();

            // A missing or corrupt file loads nothing.
            File.WriteAllBytes(path, [0x94, 0xa1, 0x78]);
            await using var fresh = new TestDhtNode(DhtTestOptions.Fast);
            Assert.Equal(0, fresh.Node.LoadRoutingTable(path));
            Assert.Equal(0, fresh.Node.LoadRoutingTable(dir.Combine("absent.bin")));
            Assert.Equal(0, await fresh.Node.BootstrapAsync([], Ct));
        }
        finally { await DisposeAllAsync(nodes); }
    }

    [Fact]
    public async Task SwarmKeySeparatesNetworks()
    {
        var keyed = DhtTestOptions.Fast with { SwarmKey = DhtTestOptions.NewSwarmKey() };
        await using var a = new TestDhtNode(keyed);
        await using var b = new TestDhtNode(keyed);
        await using var outsider = new TestDhtNode(DhtTestOptions.Fast with { SwarmKey = DhtTestOptions.NewSwarmKey() });
        Assert.Equal(b.Id, await a.Node.PingAsync(b.EndPoint, Ct));
        Assert.Null(await outsider.Node.PingAsync(b.EndPoint, Ct));
        await Poll.UntilAsync(() => b.Node.GetStats().DroppedBadKey >= 1, Wait, "the outsider's ping to be counted as a bad key");
        Assert.Equal(0, b.Node.GetStats().DroppedMalformed);
    }

    [Fact]
    public async Task LookupNeverExceedsItsHardTimeout()
    {
        // The only known node never answers, and the RPC timeout and answer window are long: the hard timeout ends the lookup.
        var options = DhtTestOptions.Fast with { RpcTimeout = TimeSpan.FromSeconds(5), LookupWidenAfter = TimeSpan.FromSeconds(5), LookupTimeout = TimeSpan.FromMilliseconds(700) };
        await using var node = new TestDhtNode(options);
        using var silent = new RawDhtPeer();
        // Put the silent peer in the table by answering one ping with a raw pong.
        var ping = node.Node.PingAsync(silent.EndPoint, Ct);
        var request = await silent.ReceiveAsync(Wait);
        silent.Send(node.EndPoint, new PongResponse(node.EndPoint), request!.Value.Header.TransactionId);
        Assert.Equal(silent.Id, await ping);

        var clock = Stopwatch.StartNew();
        var result = await node.Node.LookupAsync(Hash256.Random(), Ct);
        Assert.True(result.TimedOut);
        // Well before the 5 s RPC timeout (what it would wait without the hard one), with room for a busy machine.
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(600), TimeSpan.FromSeconds(4));
        Assert.Empty(result.Closest);
    }

    [Fact]
    public async Task GetIgnoresForgedRecordsFromAnsweringNodes()
    {
        await using var node = new TestDhtNode(DhtTestOptions.Fast);
        using var liar = new RawDhtPeer();
        // The liar becomes a contact by answering a ping.
        var ping = node.Node.PingAsync(liar.EndPoint, Ct);
        var request = await liar.ReceiveAsync(Wait);
        liar.Send(node.EndPoint, new PongResponse(node.EndPoint), request!.Value.Header.TransactionId);
        Assert.Equal(liar.Id, await ping);

        using var publisher = NodeKey.Generate();
        var key = Hash256.Random();
        var genuine = SignedRecord.Create(publisher, key, "real"u8, 1, DateTimeOffset.UtcNow.AddMinutes(5));
        var forged = new SignedRecord(key, "fake"u8.ToArray(), 9, genuine.ExpiresUnixSeconds, publisher.PublicKey, genuine.Signature.ToArray());
        var get = node.Node.GetAsync(key, null, Ct);
        var asked = await liar.ReceiveAsync(Wait);
        Assert.IsType<GetRequest>(asked!.Value.Body);
        liar.Send(node.EndPoint, new RecordsResponse(new byte[DhtLimits.TokenLength], [forged, genuine], []), asked.Value.Header.TransactionId);
        var records = await get;
        var only = Assert.Single(records);
        Assert.Equal(1, only.Sequence); // the forged higher sequence was dropped
        Assert.Equal("real"u8.ToArray(), only.Value.ToArray());
    }

    [Fact]
    public async Task BucketsAreRefreshedPeriodically()
    {
        var options = DhtTestOptions.LoopbackSwarm with { BucketRefreshInterval = TimeSpan.FromMilliseconds(300) };
        var nodes = await NetworkAsync(4, options);
        try
        {
            long before = nodes[1].Node.GetStats().Lookups;
            await Poll.UntilAsync(() => nodes[1].Node.GetStats().Lookups >= before + 3, Wait, "refresh lookups");
        }
        finally { await DisposeAllAsync(nodes); }
    }

    /// <summary>
    /// A node listening on all addresses, alone when it announced (the record went nowhere, and it knows no address of
    /// its own), still answers GetProviders for that key with itself, under the address each requester reached it at.
    /// </summary>
    [Fact]
    public async Task NodeOnAllAddressesAnswersGetProvidersWithItselfAtTheAddressItWasReachedAt()
    {
        using var key = NodeKey.Generate();
        await using var node = new DhtNode(key, DhtTestOptions.Fast);
        node.Start(new IPEndPoint(IPAddress.Any, 0));
        var content = Hash256.Random();
        Assert.Equal(0, await node.AnnounceAsync(content, 7411, ProviderHoldings.Complete(3), Ct));

        foreach (var address in new[] { IPAddress.Loopback, IPAddress.Parse("127.0.0.2") })
        {
            using var peer = new RawDhtPeer(address);
            var reply = Assert.IsType<ProvidersResponse>(await peer.RequestAsync(new IPEndPoint(address, node.LocalEndPoint.Port), new GetProvidersRequest(content), Wait));
            var self = Assert.Single(reply.Providers);
            Assert.Equal(node.NodeId, self.NodeId);
            Assert.Equal(new IPEndPoint(address, 7411), self.EndPoint);
            Assert.True(self.Holdings.IsComplete);
        }
        using var other = new RawDhtPeer();
        var unrelated = Assert.IsType<ProvidersResponse>(await other.RequestAsync(new IPEndPoint(IPAddress.Loopback, node.LocalEndPoint.Port), new GetProvidersRequest(Hash256.Random()), Wait));
        Assert.Empty(unrelated.Providers);
    }

    /// <summary>A node that announced while alone announces again as soon as its routing table fills, not at the re-announce 10 minutes later.</summary>
    [Fact]
    public async Task AnnouncementMadeWhileAloneIsStoredWhenTheFirstNodeJoins()
    {
        using var key = NodeKey.Generate();
        await using var seed = new DhtNode(key, DhtTestOptions.Fast);
        seed.Start(new IPEndPoint(IPAddress.Any, 0));
        var content = Hash256.Random();
        Assert.Equal(0, await seed.AnnounceAsync(content, 7412, ProviderHoldings.Complete(1), Ct));

        await using var joiner = new TestDhtNode(DhtTestOptions.Fast);
        Assert.True(await joiner.Node.BootstrapAsync([new IPEndPoint(IPAddress.Loopback, seed.LocalEndPoint.Port)], Ct) > 0);
        // The joiner holds the seed's record (stored by an AddProvider from the seed, under the seed's loopback address).
        // (DhtTestOptions.Fast keeps the 10-minute re-announce: only the join can have caused it.)
        await Poll.UntilAsync(() => joiner.Node.GetStats().ProvidersHeld == 1, Wait, "the seed's record stored on the node that joined");
    }
}
