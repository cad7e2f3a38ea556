using System.Buffers.Binary;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Dht;

/// <summary>The swarm-key authenticator: derived key, timestamp window, replay cache, and what a live member answers.</summary>
public class SwarmKeyTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(60);
    private static readonly Hash256 Sender = Hash256.Random();

    private static byte[] PingMessage(ulong txid, Hash256? sender = null) =>
        DhtCodec.Encode(new DhtHeader(DhtMessageKind.Ping, txid, sender ?? Sender), PingRequest.Instance, null);

    [Fact]
    public void TheMacKeyIsDerivedWithHkdfAndCoversMessageAndTimestamp()
    {
        var secret = DhtTestOptions.NewSwarmKey();
        var auth = new DatagramAuthenticator(secret, Window, 16, TimeProvider.System);
        var message = PingMessage(7);
        long stamp = 1_900_000_000_123;
        var datagram = auth.Seal(message, stamp);

        // message || timestamp (8 bytes, big-endian unix ms) || first 16 bytes of HMAC-SHA256(HKDF(secret, "swarm/dht/v1"), message || timestamp)
        Assert.Equal(message.Length + 24, datagram.Length);
        Assert.Equal(message, datagram[..message.Length]);
        Assert.Equal(stamp, BinaryPrimitives.ReadInt64BigEndian(datagram.AsSpan(message.Length, 8)));
        var derived = HKDF.DeriveKey(HashAlgorithmName.SHA256, secret, 32, null, Encoding.ASCII.GetBytes("swarm/dht/v1"));
        Assert.Equal(HMACSHA256.HashData(derived, datagram[..^16])[..16], datagram[^16..]);
        // Not a MAC under the raw secret: another protocol keyed with the same secret (TCP) never produces a valid DHT MAC.
        Assert.NotEqual(HMACSHA256.HashData(secret, datagram[..^16])[..16], datagram[^16..]);

        // Any changed byte, in the message or the timestamp, breaks the MAC.
        var receiver = new DatagramAuthenticator(secret, Window, 16, new FixedClock(stamp));
        for (int i = 0; i < datagram.Length; i++)
        {
            var copy = (byte[])datagram.Clone();
            copy[i] ^= 0x01;
            Assert.Equal(AuthResult.BadMac, receiver.Open(copy, out _));
        }
        Assert.Equal(AuthResult.BadMac, receiver.Open(datagram.AsMemory(0, 23), out _));
        Assert.Equal(AuthResult.Ok, receiver.Open(datagram, out var opened));
        Assert.Equal(message, opened.ToArray());
    }

    [Fact]
    public void SwarmKeysShorterThan16BytesAreRefused()
    {
        using var key = Swarm.Core.Identity.NodeKey.Generate();
        var e = Assert.Throws<ArgumentException>(() => new DhtNode(key, new DhtOptions { SwarmKey = "secret"u8.ToArray() }));
        Assert.Contains("at least 16", e.Message);
    }

    [Fact]
    public void ReplayCacheAcceptsEachDatagramOnceAndOnlyWithinTheWindow()
    {
        var cache = new ReplayCache(Window, 1024);
        long now = 1_900_000_000_000;
        Assert.Equal(ReplayVerdict.Fresh, cache.Check(1, now, now));
        Assert.Equal(ReplayVerdict.Replayed, cache.Check(1, now, now + 1000));
        Assert.Equal(ReplayVerdict.Fresh, cache.Check(2, now - 59_999, now));
        Assert.Equal(ReplayVerdict.Fresh, cache.Check(3, now + 60_000, now)); // a clock a minute ahead is still fine
        Assert.Equal(ReplayVerdict.OutsideWindow, cache.Check(4, now - 60_001, now));
        Assert.Equal(ReplayVerdict.OutsideWindow, cache.Check(5, now + 60_001, now));

        // Two minutes on, every entry but the one stamped in the future was forgotten, and none of them passes again.
        long later = now + 120_000;
        Assert.Equal(ReplayVerdict.OutsideWindow, cache.Check(1, now, later));
        Assert.Equal(ReplayVerdict.OutsideWindow, cache.Check(2, now - 59_999, later));
        Assert.Equal(ReplayVerdict.Replayed, cache.Check(3, now + 60_000, later));
        Assert.Equal(1, cache.Count);
    }

    [Fact]
    public void AFullReplayCacheShrinksTheWindowButNeverForgetsAReplay()
    {
        var cache = new ReplayCache(Window, capacity: 4);
        long now = 1_900_000_000_000;
        for (int i = 1; i <= 4; i++) Assert.Equal(ReplayVerdict.Fresh, cache.Check((UInt128)i, now + i, now));
        Assert.Equal(long.MinValue, cache.Floor);

        // Replays, as many as an attacker likes, add nothing and make the cache forget nothing.
        for (int round = 0; round < 1000; round++)
            for (int i = 1; i <= 4; i++) Assert.Equal(ReplayVerdict.Replayed, cache.Check((UInt128)i, now + i, now));
        Assert.Equal(4, cache.Count);
        Assert.Equal(long.MinValue, cache.Floor);

        // A fresh datagram when full: the oldest entry (stamped now+1) goes and the window's lower edge rises to it.
        Assert.Equal(ReplayVerdict.Fresh, cache.Check(5, now + 5, now));
        Assert.Equal(now + 1, cache.Floor);
        Assert.Equal(4, cache.Count);
        Assert.Equal(ReplayVerdict.OutsideWindow, cache.Check(1, now + 1, now)); // forgotten, still refused
        Assert.Equal(ReplayVerdict.Replayed, cache.Check(2, now + 2, now));
        Assert.Equal(ReplayVerdict.OutsideWindow, cache.Check(6, now + 1, now)); // a fresh one stamped at the floor
        // Full again, a fresh datagram no newer than everything remembered (now+2..now+5) is refused without forgetting anything.
        Assert.Equal(ReplayVerdict.OutsideWindow, cache.Check(7, now + 2, now));
        Assert.Equal(now + 1, cache.Floor);
        Assert.Equal(ReplayVerdict.Replayed, cache.Check(2, now + 2, now));
        Assert.Equal(ReplayVerdict.Fresh, cache.Check(8, now + 6, now));
        Assert.Equal(now + 2, cache.Floor);
    }

    [Fact]
    public void AClockSteppedBackDoesNotReviveForgottenDatagrams()
    {
        var cache = new ReplayCache(Window, 1024);
        long now = 1_900_000_000_000;
        Assert.Equal(ReplayVerdict.Fresh, cache.Check(1, now, now));
        // Our clock jumps 61 s ahead (the first entry is forgotten), then NTP steps it back.
        Assert.Equal(ReplayVerdict.Fresh, cache.Check(2, now + 61_000, now + 61_000));
        Assert.Equal(1, cache.Count);
        Assert.Equal(ReplayVerdict.OutsideWindow, cache.Check(1, now, now));
    }

    /// <summary>
    /// A member with a swarm key, on a clock the test moves: a captured request re-sent, a request stamped too far back
    /// or ahead, and an old request re-sent after the clock moved are all dropped unanswered and counted as replayed;
    /// a node without the key or with another key gets no answer at all, counted as a bad key.
    /// </summary>
    [Fact]
    public async Task ReplayedStaleAndForeignDatagramsGetNoAnswerAndAreCounted()
    {
        var time = new ManualTimeProvider();
        var secret = DhtTestOptions.NewSwarmKey();
        await using var member = new TestDhtNode(DhtTestOptions.Fast with { SwarmKey = secret, TimeProvider = time });
        var auth = new DatagramAuthenticator(secret, Window, 1024, time);
        using var peer = new RawDhtPeer(IPAddress.Parse("127.0.0.2"), auth);
        DhtStats Stats() => member.Node.GetStats();
        long Now() => time.GetUtcNow().ToUnixTimeMilliseconds();

        // A genuine request is answered.
        var captured = peer.Encode(PingRequest.Instance, 1);
        Assert.IsType<PongResponse>(await peer.RequestRawAsync(member.EndPoint, captured, 1, Wait));

        // The same bytes again: dropped. The next genuine request is answered, and it is the second answer in all.
        peer.SendRaw(member.EndPoint, captured);
        await Poll.UntilAsync(() => Stats().DroppedReplayed == 1, Wait, "the replay to be counted");
        var second = peer.Encode(PingRequest.Instance, 2);
        Assert.IsType<PongResponse>(await peer.RequestRawAsync(member.EndPoint, second, 2, Wait));
        await Poll.UntilAsync(() => Stats().RequestsAnswered >= 2, Wait, "two answers to be counted");
        Assert.Equal(2, Stats().RequestsAnswered);

        // Stamped 61 s back or ahead: dropped; 59 s back: answered.
        peer.SendRaw(member.EndPoint, auth.Seal(PingMessage(3, peer.Id), Now() - 61_000));
        await Poll.UntilAsync(() => Stats().DroppedReplayed == 2, Wait, "the old datagram to be counted");
        peer.SendRaw(member.EndPoint, auth.Seal(PingMessage(4, peer.Id), Now() + 61_000));
        await Poll.UntilAsync(() => Stats().DroppedReplayed == 3, Wait, "the future datagram to be counted");
        Assert.IsType<PongResponse>(await peer.RequestRawAsync(member.EndPoint, auth.Seal(PingMessage(5, peer.Id), Now() - 59_000), 5, Wait));

        // A minute later the member has forgotten the second request, and refuses it by its timestamp.
        time.Advance(TimeSpan.FromSeconds(61));
        peer.SendRaw(member.EndPoint, second);
        await Poll.UntilAsync(() => Stats().DroppedReplayed == 4, Wait, "the late replay to be counted");
        Assert.IsType<PongResponse>(await peer.RequestAsync(member.EndPoint, PingRequest.Instance, Wait));
        await Poll.UntilAsync(() => Stats().RequestsAnswered >= 4, Wait, "four answers to be counted");
        Assert.Equal(4, Stats().RequestsAnswered);

        // No key, another key: no answer, not even to a provider query (no content id leaves the swarm).
        await using var unkeyed = new TestDhtNode(DhtTestOptions.Fast, address: IPAddress.Parse("127.0.0.3"));
        Assert.Null(await unkeyed.Node.PingAsync(member.EndPoint, Ct));
        await using var foreign = new TestDhtNode(DhtTestOptions.Fast with { SwarmKey = DhtTestOptions.NewSwarmKey() }, address: IPAddress.Parse("127.0.0.4"));
        Assert.Null(await foreign.Node.PingAsync(member.EndPoint, Ct));
        using var prober = new RawDhtPeer(IPAddress.Parse("127.0.0.5"), new DatagramAuthenticator(DhtTestOptions.NewSwarmKey(), Window, 16, time));
        prober.Send(member.EndPoint, new GetProvidersRequest(Hash256.Random()));
        await Poll.UntilAsync(() => Stats().DroppedBadKey == 3, Wait, "three foreign datagrams to be counted as a bad key");
        var stats = Stats();
        Assert.Equal(4, stats.RequestsAnswered);
        Assert.Equal(0, stats.DroppedMalformed);
        Assert.Equal(0, stats.HandlerErrors);
        Assert.Equal(0, member.Node.GetStats().RoutingTableSize); // nobody answered the member's verification pings
    }

    /// <summary>A clock that stands still (for opening a datagram stamped at a given time).</summary>
    private sealed class FixedClock(long unixMilliseconds) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(unixMilliseconds);
    }
}
