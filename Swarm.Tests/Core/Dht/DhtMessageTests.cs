using System.Net;
using Swarm.Core.Content;
using Swarm.Core.Dht;
using Swarm.Core.Identity;

namespace Swarm.Tests.Core.Dht;

public class DhtMessageTests
{
    private static readonly Hash256 Sender = Hash256.Random();

    private static Contact V4(int i) => new(Hash256.Random(), new IPEndPoint(IPAddress.Parse($"198.51.100.{i % 250 + 1}"), 40_000 + i));
    private static Contact V6(int i) => new(Hash256.Random(), new IPEndPoint(IPAddress.Parse($"2001:db8::{i + 1:x}"), 65_000 + i));

    private static DatagramAuthenticator Authenticator(byte[] swarmKey) => new(swarmKey, TimeSpan.FromSeconds(60), 1024, TimeProvider.System);

    private static IDhtBody RoundTrip(IDhtBody body, byte[]? swarmKey = null)
    {
        var bytes = DhtCodec.Encode(new DhtHeader(body.Kind, 0x0123456789abcdef, Sender), body, swarmKey == null ? null : Authenticator(swarmKey));
        Assert.True(bytes.Length <= DhtLimits.MaxDatagramLength);
        Assert.Equal(DecodeResult.Ok, DhtCodec.TryDecode(bytes, swarmKey == null ? null : Authenticator(swarmKey), out var header, out var decoded));
        Assert.Equal(body.Kind, header.Kind);
        Assert.Equal(0x0123456789abcdefUL, header.TransactionId);
        Assert.Equal(Sender, header.Sender);
        return decoded!;
    }

    [Fact]
    public void RequestsAndResponsesRoundTrip()
    {
        Assert.IsType<PingRequest>(RoundTrip(PingRequest.Instance));
        var observed = new IPEndPoint(IPAddress.Parse("192.0.2.7"), 7400);
        Assert.Equal(observed, Assert.IsType<PongResponse>(RoundTrip(new PongResponse(observed))).Observed);
        var target = Hash256.Random();
        Assert.Equal(target, Assert.IsType<FindNodeRequest>(RoundTrip(new FindNodeRequest(target))).Target);

        var contacts = Enumerable.Range(0, 10).Select(V4).Concat(Enumerable.Range(0, 10).Select(V6)).ToList();
        Assert.Equal(contacts, Assert.IsType<NodesResponse>(RoundTrip(new NodesResponse(contacts))).Contacts);

        var token = new byte[DhtLimits.TokenLength];
        token[3] = 9;
        var holdings = ProviderHoldings.Partial(3, 2000, new byte[125]);
        var add = Assert.IsType<AddProviderRequest>(RoundTrip(new AddProviderRequest(target, token, 7400, holdings)));
        Assert.Equal(token, add.Token);
        Assert.Equal(7400, add.TcpPort);
        Assert.Equal(3, add.Holdings.VerifiedPieces);
        Assert.Equal(2000, add.Holdings.TotalPieces);
        Assert.Equal(125, add.Holdings.Bitmap.Length);

        var provider = new ProviderRecord(Hash256.Random(), new IPEndPoint(IPAddress.Parse("192.0.2.1"), 7400), ProviderHoldings.Complete(10), TimeSpan.FromSeconds(42));
        var providers = Assert.IsType<ProvidersResponse>(RoundTrip(new ProvidersResponse(token, [provider], contacts[..5])));
        Assert.Equal(provider, Assert.Single(providers.Providers));
        Assert.Equal(contacts[..5], providers.Contacts);

        var status = Assert.IsType<StatusResponse>(RoundTrip(new StatusResponse(DhtMessageKind.PutResult, DhtStatus.StaleSequence)));
        Assert.Equal(DhtStatus.StaleSequence, status.Status);
        Assert.Null(Assert.IsType<GetRequest>(RoundTrip(new GetRequest(target, null))).Publisher);
        Assert.Equal(Sender, Assert.IsType<GetRequest>(RoundTrip(new GetRequest(target, Sender))).Publisher);
    }

    [Fact]
    public void LargestMessagesFitTheirLimits()
    {
        using var key = NodeKey.Generate();
        var record = SignedRecord.Create(key, Hash256.Random(), new byte[SignedRecord.MaxValueLength], long.MaxValue, DateTimeOffset.UtcNow.AddHours(1));
        var put = Assert.IsType<PutRequest>(RoundTrip(new PutRequest(new byte[DhtLimits.TokenLength], record), swarmKey: new byte[32]));
        Assert.True(put.Record.Verify());

        // k = 20 IPv6 contacts, with a swarm-key authenticator (timestamp and MAC).
        var contacts = Enumerable.Range(0, 20).Select(V6).ToList();
        Assert.Equal(20, Assert.IsType<NodesResponse>(RoundTrip(new NodesResponse(contacts), new byte[32])).Contacts.Count);
        var holdings = ProviderHoldings.Partial(1, 8192, new byte[128]);
        var add = new AddProviderRequest(Hash256.Random(), new byte[DhtLimits.TokenLength], 65535, holdings);
        RoundTrip(add, new byte[32]);
    }

    [Fact]
    public void SwarmKeyMismatchIsRejected()
    {
        var key = new byte[32];
        key[0] = 1;
        var otherKey = (byte[])key.Clone();
        otherKey[31] = 1;
        var bytes = DhtCodec.Encode(new DhtHeader(DhtMessageKind.Ping, 1, Sender), PingRequest.Instance, Authenticator(key));
        Assert.Equal(DecodeResult.BadMac, DhtCodec.TryDecode(bytes, Authenticator(otherKey), out _, out _));
        Assert.Equal(DecodeResult.Malformed, DhtCodec.TryDecode(bytes, null, out _, out _)); // trailing authenticator bytes
        var unkeyed = DhtCodec.Encode(new DhtHeader(DhtMessageKind.Ping, 1, Sender), PingRequest.Instance, null);
        Assert.Equal(DecodeResult.BadMac, DhtCodec.TryDecode(unkeyed, Authenticator(key), out _, out _)); // no authenticator at all
        var receiver = Authenticator(key);
        Assert.Equal(DecodeResult.Ok, DhtCodec.TryDecode(bytes, receiver, out _, out _));
        Assert.Equal(DecodeResult.Replayed, DhtCodec.TryDecode(bytes, receiver, out _, out _));
    }

    [Fact]
    public void EveryTruncationAndRandomGarbageIsRejectedWithoutThrowing()
    {
        var contacts = Enumerable.Range(0, 20).Select(V4).ToList();
        var full = DhtCodec.Encode(new DhtHeader(DhtMessageKind.Nodes, 5, Sender), new NodesResponse(contacts), null);
        for (int length = 0; length < full.Length; length++)
            Assert.NotEqual(DecodeResult.Ok, DhtCodec.TryDecode(full.AsMemory(0, length), null, out _, out _));

        var random = new Random(7);
        var buffer = new byte[1500];
        for (int i = 0; i < 20_000; i++)
        {
            int length = random.Next(buffer.Length);
            random.NextBytes(buffer.AsSpan(0, length));
            DhtCodec.TryDecode(buffer.AsMemory(0, length), null, out _, out _);
        }
        // Bit flips of a valid message: decoded or rejected, never thrown.
        for (int i = 0; i < 20_000; i++)
        {
            var copy = (byte[])full.Clone();
            copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
            DhtCodec.TryDecode(copy, null, out _, out _);
        }
    }

    [Fact]
    public void OversizedAndHostileCountsAreRejected()
    {
        Assert.Equal(DecodeResult.Oversized, DhtCodec.TryDecode(new byte[DhtLimits.MaxDatagramLength + 1], null, out _, out _));
        // A ping padded far beyond a ping's limit.
        var ping = DhtCodec.Encode(new DhtHeader(DhtMessageKind.Ping, 1, Sender), PingRequest.Instance, null);
        var padded = new byte[DhtLimits.MaxLength(DhtMessageKind.Ping) + 1];
        ping.CopyTo(padded, 0);
        Assert.Equal(DecodeResult.Oversized, DhtCodec.TryDecode(padded, null, out _, out _));
        // An array header claiming 2^32-1 contacts.
        byte[] hostile = [0x95, 0x01, 0x42, 0x01, 0xc4, 0x20, .. new byte[32], 0x91, 0xdd, 0xff, 0xff, 0xff, 0xff];
        Assert.Equal(DecodeResult.Malformed, DhtCodec.TryDecode(hostile, null, out _, out _));
    }

    [Fact]
    public void SignedRecordsVerifyAndDetectTampering()
    {
        using var key = NodeKey.Generate();
        var record = SignedRecord.Create(key, Hash256.Random(), "pointer"u8, 3, DateTimeOffset.UtcNow.AddMinutes(5));
        Assert.True(record.Verify());
        Assert.Equal(key.NodeId, record.Publisher);
        var forged = new SignedRecord(record.Key, "Pointer"u8.ToArray(), 3, record.ExpiresUnixSeconds, key.PublicKey, record.Signature.ToArray());
        Assert.False(forged.Verify());
        var bumped = new SignedRecord(record.Key, record.Value.ToArray(), 4, record.ExpiresUnixSeconds, key.PublicKey, record.Signature.ToArray());
        Assert.False(bumped.Verify());
    }

    [Fact]
    public void HoldingsSummariseABitfield()
    {
        var bits = new Bitfield(3000);
        for (int i = 0; i < 300; i++) bits.Set(i);
        bits.Set(2999);
        var h = ProviderHoldings.FromBitfield(bits);
        Assert.False(h.IsComplete);
        Assert.Equal(301, h.VerifiedPieces);
        Assert.Equal(3000, h.TotalPieces);
        Assert.True(h.Bitmap.Length <= ProviderHoldings.MaxBitmapBytes);
        Assert.Equal(3, h.PiecesPerBit);
        Assert.True(h.MayHave(0));
        Assert.True(h.MayHave(299));
        Assert.False(h.MayHave(300));
        Assert.False(h.MayHave(2999)); // its segment (2997-2999) is not held whole
        Assert.False(h.MayHave(1500));

        bits.SetAll();
        Assert.True(ProviderHoldings.FromBitfield(bits).IsComplete);
        Assert.Throws<ArgumentOutOfRangeException>(() => ProviderHoldings.Partial(5, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => ProviderHoldings.Partial(1, 4, new byte[2]));
    }
}
