using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;
using MessagePack;
using Swarm.Core.Content;
using Swarm.Core.Identity;
using Swarm.Core.Wire;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Exchange;

/// <summary>Malformed input from a peer that has not completed the handshake: the node drops it and keeps serving.</summary>
public sealed class PreHandshakeAttackTests
{
    private static readonly Swarm.Core.Identity.NodeKey Dialer = Swarm.Core.Identity.NodeKey.Generate();

    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);

    private static byte[] ValidHelloBody(ContentId content)
    {
        using var key = NodeKey.Generate();
        return RawPeer.Encode(new Hello(WireLimits.ProtocolVersion, key.NodeId, key.PublicKey, RandomNumberGenerator.GetBytes(Hello.NonceLength), content.Value, 0));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Truncated_frame_then_close_is_dropped_and_node_still_serves(bool halfClose)
    {
        await using var seed = await SeededNode.StartAsync();
        byte[] frame = RawPeer.Frame(MessageKind.Hello, ValidHelloBody(seed.Id));
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.AdmitAsync(Dialer); // past admission (the transport preamble), as a Swarm peer: the handshake is what is attacked
            await peer.SendAsync(frame.AsMemory(0, frame.Length / 2));
            if (halfClose)
            {
                peer.Socket.Shutdown(SocketShutdown.Send);
                var frames = await peer.WaitForCloseAsync(CloseTimeout);
                Assert.Empty(frames);
            }
        }
        Assert.Equal(0, seed.Node.Engine.Find(seed.Id)!.PeerCount);
        await seed.AssertStillServesAsync();
    }

    [Fact]
    public async Task Length_prefix_of_4_GiB_is_dropped_at_once()
    {
        await using var seed = await SeededNode.StartAsync();
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.AdmitAsync(Dialer); // past admission (the transport preamble), as a Swarm peer: the handshake is what is attacked
            await peer.SendAsync(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, (byte)MessageKind.Hello });
            Assert.Empty(await peer.WaitForCloseAsync(CloseTimeout));
        }
        await seed.AssertStillServesAsync();
    }

    [Fact]
    public async Task Sixty_four_KiB_of_random_bytes_are_dropped()
    {
        await using var seed = await SeededNode.StartAsync();
        var noise = new byte[64 * 1024];
        new Random(42).NextBytes(noise);
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.AdmitAsync(Dialer); // past admission (the transport preamble), as a Swarm peer: the handshake is what is attacked
            await peer.SendIgnoringResetAsync(noise);
            Assert.Empty(await peer.WaitForCloseAsync(CloseTimeout));
        }
        await seed.AssertStillServesAsync();
    }

    /// <summary>Random bytes that happen to start with a plausible Hello prefix: the body is buffered, then refused.</summary>
    [Fact]
    public async Task Random_bytes_behind_a_plausible_hello_prefix_are_dropped()
    {
        await using var seed = await SeededNode.StartAsync();
        var noise = new byte[64 * 1024];
        new Random(43).NextBytes(noise);
        BinaryPrimitives.WriteUInt32BigEndian(noise, 1000);
        noise[4] = (byte)MessageKind.Hello;
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.AdmitAsync(Dialer); // past admission (the transport preamble), as a Swarm peer: the handshake is what is attacked
            await peer.SendIgnoringResetAsync(noise);
            Assert.Empty(await peer.WaitForCloseAsync(CloseTimeout));
        }
        await seed.AssertStillServesAsync();
    }

    public static TheoryData<string> GarbageHelloBodies => new()
    {
        "empty", "never-used code c1", "random 300 bytes", "map instead of array", "six nils", "array header of 4 billion",
        "bin32 claiming 4 GiB", "version too big for int32", "nonce of 31 bytes", "node id of 31 bytes", "port 70000",
        "valid hello plus trailing byte", "five fields", "strings instead of bytes", "negative version",
    };

    private static byte[] GarbageHello(string name, ContentId content)
    {
        using var key = NodeKey.Generate();
        byte[] nonce = RandomNumberGenerator.GetBytes(Hello.NonceLength);
        byte[] Fields(object version, byte[] nodeId, byte[] publicKey, byte[] nonceBytes, byte[] contentId, int port) => Pack.Bytes((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(6);
            if (version is ulong big) w.Write(big); else w.Write((int)version);
            w.Write(nodeId);
            w.Write(publicKey);
            w.Write(nonceBytes);
            w.Write(contentId);
            w.Write(port);
        });
        switch (name)
        {
            case "empty": return [];
            case "never-used code c1": return [0xC1];
            case "random 300 bytes":
                var r = new byte[300];
                new Random(5).NextBytes(r);
                return r;
            case "map instead of array": return [0x80];
            case "six nils": return [0x96, 0xC0, 0xC0, 0xC0, 0xC0, 0xC0, 0xC0];
            case "array header of 4 billion": return [0xDD, 0xFF, 0xFF, 0xFF, 0xFF, 0x01];
            case "bin32 claiming 4 GiB": return [0x96, 0x01, 0xC6, 0xFF, 0xFF, 0xFF, 0xFF, 0x00];
            case "version too big for int32": return Fields(ulong.MaxValue, key.NodeId.ToArray(), key.PublicKey, nonce, content.Value.ToArray(), 0);
            case "negative version": return Fields(-1, key.NodeId.ToArray(), key.PublicKey, nonce, content.Value.ToArray(), 0);
            case "nonce of 31 bytes": return Fields(1, key.NodeId.ToArray(), key.PublicKey, nonce[..31], content.Value.ToArray(), 0);
            case "node id of 31 bytes": return Fields(1, key.NodeId.ToArray()[..31], key.PublicKey, nonce, content.Value.ToArray(), 0);
            case "port 70000": return Fields(1, key.NodeId.ToArray(), key.PublicKey, nonce, content.Value.ToArray(), 70000);
            case "valid hello plus trailing byte": return [.. ValidHelloBody(content), 0x00];
            case "five fields": return Pack.Bytes((ref MessagePackWriter w) =>
            {
                w.WriteArrayHeader(5);
                w.Write(1);
                w.Write(key.NodeId.ToArray());
                w.Write(key.PublicKey);
                w.Write(nonce);
                w.Write(content.Value.ToArray());
            });
            case "strings instead of bytes": return Pack.Bytes((ref MessagePackWriter w) =>
            {
                w.WriteArrayHeader(6);
                w.Write(1);
                w.Write(new string('a', 32));
                w.Write("key");
                w.Write(new string('n', 32));
                w.Write(new string('c', 32));
                w.Write(0);
            });
            default: throw new ArgumentException(name);
        }
    }

    [Theory]
    [MemberData(nameof(GarbageHelloBodies))]
    public async Task Well_framed_hello_with_garbage_body_is_dropped(string garbage)
    {
        await using var seed = await SeededNode.StartAsync();
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.AdmitAsync(Dialer); // past admission (the transport preamble), as a Swarm peer: the handshake is what is attacked
            await peer.SendIgnoringResetAsync(RawPeer.Frame(MessageKind.Hello, GarbageHello(garbage, seed.Id)));
            var frames = await peer.WaitForCloseAsync(CloseTimeout);
            Assert.Empty(frames); // not even a Hello back
        }
        Assert.Equal(0, seed.Node.Engine.Find(seed.Id)!.PeerCount);
        await seed.AssertStillServesAsync();
    }

    [Theory]
    [InlineData(0)]   // kind 0 is only valid as a zero-length keep-alive
    [InlineData(17)]
    [InlineData(128)]
    [InlineData(255)]
    public async Task Frame_with_unknown_kind_is_dropped(byte kind)
    {
        await using var seed = await SeededNode.StartAsync();
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.AdmitAsync(Dialer); // past admission (the transport preamble), as a Swarm peer: the handshake is what is attacked
            await peer.SendIgnoringResetAsync(RawPeer.Frame((MessageKind)kind, [0x90]));
            Assert.Empty(await peer.WaitForCloseAsync(CloseTimeout));
        }
        await seed.AssertStillServesAsync();
    }

    [Theory]
    [InlineData(MessageKind.Request)]
    [InlineData(MessageKind.HaveAll)]
    [InlineData(MessageKind.HelloProof)]
    [InlineData(MessageKind.KeepAlive)]
    public async Task A_first_frame_that_is_not_hello_is_dropped(MessageKind kind)
    {
        await using var seed = await SeededNode.StartAsync();
        byte[] frame = kind switch
        {
            MessageKind.Request => RawPeer.Frame(new Request(0, 0, PieceLayout.BlockSize)),
            MessageKind.HelloProof => RawPeer.Frame(new HelloProof(new byte[64])),
            MessageKind.KeepAlive => new byte[4],
            _ => RawPeer.Frame(kind, []),
        };
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.AdmitAsync(Dialer); // past admission (the transport preamble), as a Swarm peer: the handshake is what is attacked
            await peer.SendIgnoringResetAsync(frame);
            Assert.Empty(await peer.WaitForCloseAsync(CloseTimeout));
        }
        await seed.AssertStillServesAsync();
    }

    /// <summary>
    /// During the handshake only Hello (at most 1 KiB) is acceptable from the dialer, so a prefix announcing an 8 MiB Hashes
    /// frame must be refused from the prefix alone, before the node buffers megabytes for an unauthenticated peer
    /// (DESIGN §5: "check the length against a per-kind maximum before buffering anything").
    /// </summary>
    [Fact]
    public async Task Handshake_refuses_a_large_non_hello_frame_from_its_prefix()
    {
        await using var seed = await SeededNode.StartAsync(); // handshake timeout stays at its 10 s default
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.AdmitAsync(Dialer); // past admission (the transport preamble), as a Swarm peer: the handshake is what is attacked
            var prefix = new byte[FrameCodec.PrefixLength];
            BinaryPrimitives.WriteUInt32BigEndian(prefix, WireLimits.MaxFrameLength);
            prefix[4] = (byte)MessageKind.Hashes;
            await peer.SendAsync(prefix);
            Assert.Empty(await peer.WaitForCloseAsync(TimeSpan.FromSeconds(3)));
        }
        await seed.AssertStillServesAsync();
    }
}

/// <summary>Builds MessagePack bytes by hand, for malformed and hostile inputs.</summary>
internal static class Pack
{
    public delegate void WriteAction(ref MessagePackWriter writer);

    public static byte[] Bytes(WriteAction write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var w = new MessagePackWriter(buffer);
        write(ref w);
        w.Flush();
        return buffer.WrittenSpan.ToArray();
    }
}
