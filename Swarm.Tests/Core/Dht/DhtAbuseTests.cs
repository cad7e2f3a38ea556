using System.Diagnostics;
using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Dht;

/// <summary>Hostile datagrams against a live node: it drops and counts them, never throws, and keeps answering others.</summary>
[Collection(DhtNetworkCollection.Name)]
public class DhtAbuseTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task GarbageTruncatedOversizedAndReplayedDatagramsAreDroppedAndCounted()
    {
        // A generous rate limit here: every datagram must reach the parser.
        var options = DhtTestOptions.Fast with { RatePerSource = 1_000_000, BurstPerSource = 1_000_000 };
        await using var node = new TestDhtNode(options);
        using var attacker = new RawDhtPeer();
        var random = new Random(42);

        // Garbage: random bytes of random lengths, and a message whose kind is unknown.
        const int garbage = 300;
        for (int i = 0; i < garbage; i++)
        {
            var bytes = new byte[random.Next(1, DhtLimits.MaxDatagramLength)];
            random.NextBytes(bytes);
            attacker.SendRaw(node.EndPoint, bytes);
        }
        // Truncated: every proper non-empty prefix of a valid find-node request. (An empty datagram is a reachability
        // probe, ignored without counting.)
        var valid = attacker.Encode(new FindNodeRequest(Hash256.Random()), 99);
        for (int length = 0; length < valid.Length; length++) attacker.SendRaw(node.EndPoint, valid.AsSpan(0, length));
        int malformed = garbage + valid.Length - 1;
        await Poll.UntilAsync(() => node.Node.GetStats().DroppedMalformed >= malformed, Wait, "garbage and truncated datagrams to be counted");

        // Oversized: just over the limit, far over it, and a small kind padded past its own limit.
        attacker.SendRaw(node.EndPoint, new byte[DhtLimits.MaxDatagramLength + 1]);
        attacker.SendRaw(node.EndPoint, new byte[60_000]);
        var paddedPing = new byte[DhtLimits.MaxLength(DhtMessageKind.Ping) + 10];
        attacker.Encode(PingRequest.Instance, 5).CopyTo(paddedPing, 0);
        attacker.SendRaw(node.EndPoint, paddedPing);
        await Poll.UntilAsync(() => node.Node.GetStats().DroppedOversized >= 3, Wait, "oversized datagrams to be counted");

        // Replayed and unsolicited answers: the node pings the attacker, who answers twice, from another socket, and with the wrong kind.
        var ping = node.Node.PingAsync(attacker.EndPoint, Ct);
        var request = await attacker.ReceiveAsync(Wait);
        Assert.NotNull(request);
        ulong txid = request.Value.Header.TransactionId;
        using var thirdParty = new RawDhtPeer();
        thirdParty.Send(node.EndPoint, new PongResponse(node.EndPoint), txid);          // right txid, wrong source
        attacker.Send(node.EndPoint, new NodesResponse([]), txid);                        // right txid and source, wrong kind
        await Poll.UntilAsync(() => node.Node.GetStats().DroppedUnsolicited >= 2, Wait, "misdirected answers to be dropped");
        var pong = attacker.Encode(new PongResponse(node.EndPoint), txid);
        attacker.SendRaw(node.EndPoint, pong);
        Assert.Equal(attacker.Id, await ping);
        attacker.SendRaw(node.EndPoint, pong);                                            // replay
        attacker.Send(node.EndPoint, new PongResponse(node.EndPoint), txid + 1);         // never asked
        await Poll.UntilAsync(() => node.Node.GetStats().DroppedUnsolicited >= 4, Wait, "replayed answers to be dropped");

        var stats = node.Node.GetStats();
        Assert.Equal(0, stats.HandlerErrors);
        Assert.True(stats.DatagramsDropped >= malformed + 3 + 4);
        Assert.False(node.Node.RoutingTable.Contains(thirdParty.Id));
        // Still serving.
        await using var honest = new TestDhtNode(DhtTestOptions.Fast);
        Assert.Equal(node.Id, await honest.Node.PingAsync(node.EndPoint, Ct));
    }

    [Fact]
    public async Task AFloodFromOneAddressDoesNotStopTheNodeFromAnsweringOthers()
    {
        // The flooder sends from 127.0.0.1 and the honest node from 127.0.0.2: two addresses, two budgets.
        await using var victim = new TestDhtNode(DhtTestOptions.Fast);
        // A ping the kernel drops from the victim's full socket buffer costs the honest node only a short timeout.
        await using var honest = new TestDhtNode(DhtTestOptions.Fast with { RpcTimeout = TimeSpan.FromMilliseconds(250) }, address: IPAddress.Parse("127.0.0.2"));
        using var flooder = new RawDhtPeer();
        // Find-node requests: the most expensive thing to answer (a sorted table scan and a full datagram back).
        var datagram = flooder.Encode(new FindNodeRequest(Hash256.Random()), 1);
        const int floodSize = 20_000;

        var clock = Stopwatch.StartNew();
        var flood = Task.Run(async () =>
        {
            // Bursts of 1,000 as fast as one socket sends, with short pauses so the flood lasts a couple of seconds.
            for (int i = 0; i < floodSize; i++)
            {
                flooder.SendRaw(victim.EndPoint, datagram);
                if (i % 1000 == 999) await Task.Delay(50, Ct);
            }
        }, Ct);

        int asked = 0, answered = 0;
        while (!flood.IsCompleted)
        {
            asked++;
            if (await honest.Node.PingAsync(victim.EndPoint, Ct) == victim.Id) answered++;
            await Task.Delay(2, Ct);
        }
        await flood.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        var floodTime = clock.Elapsed;
        TestContext.Current.SendDiagnosticMessage($"flood of {floodSize} in {floodTime.TotalMilliseconds:0} ms; honest pings answered {answered}/{asked}");

        Assert.True(asked >= 10, $"only {asked} honest pings overlapped the flood");
        Assert.True(answered >= asked * 0.8, $"{answered} of {asked} honest pings answered during the flood");
        Assert.Equal(victim.Id, await honest.Node.PingAsync(victim.EndPoint, Ct));

        var options = victim.Node.Options;
        // The kernel drops what does not fit the socket buffer; wait until the node has taken in everything that did fit.
        long seen = -1;
        await Poll.UntilAsync(() =>
        {
            long now = victim.Node.GetStats().DatagramsReceived;
            bool settled = now == seen;
            seen = now;
            return settled;
        }, Wait, "the flood to be drained");
        var stats = victim.Node.GetStats();
        Assert.True(stats.DatagramsReceived >= floodSize / 4, $"only {stats.DatagramsReceived} datagrams arrived");
        // The flooder got at most its burst plus the refill over the flood's duration.
        long allowed = options.BurstPerSource + (long)(options.RatePerSource * (floodTime.TotalSeconds + 1));
        Assert.True(stats.DroppedRateLimited >= stats.DatagramsReceived - allowed - asked - 10, $"rate-limited {stats.DroppedRateLimited} of {stats.DatagramsReceived}");
        Assert.Equal(0, stats.HandlerErrors);
    }
}
