using System.Buffers;
using System.Net;
using MessagePack;
using Swarm.Core.Wire;

namespace Swarm.Tests.Core.Wire;

public class PeerListTests
{
    private static ReadOnlySequence<byte> Encode(Action<MessagePackWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        write(w);
        return new ReadOnlySequence<byte>(buffer.WrittenMemory);
    }

    [Fact]
    public void RoundTripsIPv4AndIPv6Addresses()
    {
        var list = new PeerList([new IPEndPoint(IPAddress.Parse("10.1.2.3"), 7400), new IPEndPoint(IPAddress.Parse("fd00::1"), 65535)]);
        var body = Encode(w => { list.Write(ref w); w.Flush(); });
        var back = WireMessage.Decode<PeerList>(body);
        Assert.Equal(list.Peers, back.Peers);
    }

    [Fact]
    public void MoreThanFiftyEntriesAreAProtocolViolation()
    {
        var many = new PeerList([.. Enumerable.Range(1, WireLimits.MaxPeerListEntries + 1).Select(i => new IPEndPoint(IPAddress.Loopback, i))]);
        var body = Encode(w => { many.Write(ref w); w.Flush(); });
        Assert.Throws<WireProtocolException>(() => WireMessage.Decode<PeerList>(body));
    }

    [Theory]
    [InlineData(3, 7400)]
    [InlineData(5, 7400)]
    [InlineData(4, 0)]
    [InlineData(4, 70000)]
    public void BadAddressOrPortIsAProtocolViolation(int addressLength, int port)
    {
        var body = Encode(w =>
        {
            w.WriteArrayHeader(1);
            w.WriteArrayHeader(2);
            w.Write(new byte[addressLength]);
            w.Write(port);
            w.Flush();
        });
        Assert.Throws<WireProtocolException>(() => WireMessage.Decode<PeerList>(body));
    }

    [Fact]
    public void AFullListFitsTheFrameLimit()
    {
        var full = new PeerList([.. Enumerable.Range(1, WireLimits.MaxPeerListEntries).Select(i => new IPEndPoint(IPAddress.IPv6Loopback, 65000 + i % 500))]);
        var body = Encode(w => { full.Write(ref w); w.Flush(); });
        Assert.True(1 + body.Length <= WireLimits.MaxFrame(MessageKind.PeerList), $"{body.Length} bytes");
    }
}
