using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Identity;
using Swarm.Core.Wire;
using Swarm.Tests.Support;

namespace Swarm.Tests.Core.Exchange;

/// <summary>The handshake proves who is at the other end; a peer that cannot is dropped before any content flows.</summary>
public sealed class HandshakeTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private static int Peers(SeededNode seed) => seed.Node.Engine.Find(seed.Id)!.PeerCount;

    [Fact]
    public async Task Correct_handshake_starts_a_session()
    {
        await using var seed = await SeededNode.StartAsync();
        using var key = NodeKey.Generate();
        await using var peer = await RawPeer.ConnectAsync(seed.EndPoint);
        var hello = await peer.HandshakeAsync(key, seed.Id);
        Assert.Equal(seed.Node.Key.NodeId, hello.NodeId);
        Assert.Equal(seed.Id.Value, hello.ContentId);
        Assert.Equal(seed.EndPoint.Port, hello.ListenPort);
        await peer.ExpectFrameAsync(MessageKind.HaveAll, Timeout);
        await Poll.UntilAsync(() => Peers(seed) == 1, Timeout, "the session to attach");
        Assert.Equal(key.NodeId, seed.Node.Engine.Find(seed.Id)!.Sessions.Single().Peer.NodeId);
    }

    [Fact]
    public async Task Peer_whose_node_id_is_not_the_hash_of_its_key_is_dropped()
    {
        await using var seed = await SeededNode.StartAsync();
        using var key = NodeKey.Generate();
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.AdmitAsync(key);
            await peer.SendMessageAsync(new Hello(WireLimits.ProtocolVersion, Hash256.Random(), key.PublicKey, RandomNumberGenerator.GetBytes(32), seed.Id.Value, 0));
            Assert.Empty(await peer.WaitForCloseAsync(Timeout)); // no Hello back
        }
        Assert.Equal(0, Peers(seed));
        await seed.AssertStillServesAsync();
    }

    [Fact]
    public async Task Peer_claiming_another_nodes_id_with_its_own_key_is_dropped()
    {
        await using var seed = await SeededNode.StartAsync();
        using var victim = NodeKey.Generate();
        using var attacker = NodeKey.Generate();
        await using var peer = await RawPeer.ConnectAsync(seed.EndPoint);
        await peer.AdmitAsync(attacker);
        await peer.SendMessageAsync(new Hello(WireLimits.ProtocolVersion, victim.NodeId, attacker.PublicKey, RandomNumberGenerator.GetBytes(32), seed.Id.Value, 0));
        Assert.Empty(await peer.WaitForCloseAsync(Timeout));
        Assert.Equal(0, Peers(seed));
    }

    public static TheoryData<string> BadProofs => new()
    {
        "64 random bytes", "signed by another key", "signed over the wrong nonces", "signed for other content", "empty", "65 bytes",
        "DER-encoded signature",
    };

    [Theory]
    [MemberData(nameof(BadProofs))]
    public async Task Peer_whose_proof_signature_is_wrong_is_dropped(string kind)
    {
        await using var seed = await SeededNode.StartAsync();
        using var key = NodeKey.Generate();
        using var other = NodeKey.Generate();
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            byte[] nonce = RandomNumberGenerator.GetBytes(Hello.NonceLength);
            await peer.AdmitAsync(key);
            await peer.SendMessageAsync(new Hello(WireLimits.ProtocolVersion, key.NodeId, key.PublicKey, nonce, seed.Id.Value, 0));
            var hello = (await peer.ExpectFrameAsync(MessageKind.Hello, Timeout)).Decode<Hello>();
            await peer.ExpectFrameAsync(MessageKind.HelloProof, Timeout);
            byte[] right = RawPeer.HandshakePayload(hello.Nonce, nonce, seed.Id.Value, key.NodeId);
            byte[] signature = kind switch
            {
                "64 random bytes" => RandomNumberGenerator.GetBytes(64),
                "signed by another key" => other.Sign(right),
                "signed over the wrong nonces" => key.Sign(RawPeer.HandshakePayload(nonce, hello.Nonce, seed.Id.Value, key.NodeId)),
                "signed for other content" => key.Sign(RawPeer.HandshakePayload(hello.Nonce, nonce, Hash256.Random(), key.NodeId)),
                "empty" => [],
                "65 bytes" => [.. key.Sign(right), 0x00],
                "DER-encoded signature" => DerSignature(key, right),
                _ => throw new ArgumentException(kind),
            };
            await peer.SendMessageAsync(new HelloProof(signature));
            var frames = await peer.WaitForCloseAsync(Timeout);
            Assert.DoesNotContain(frames, f => f.Kind is MessageKind.HaveAll or MessageKind.Bitfield or MessageKind.HaveNone);
        }
        Assert.Equal(0, Peers(seed));
        await seed.AssertStillServesAsync();
    }

    private static byte[] DerSignature(NodeKey key, byte[] data)
    {
        byte[] p1363 = key.Sign(data);
        // Re-encode the same (r, s) as DER: a different format than the wire's fixed 64 bytes.
        var w = new System.Formats.Asn1.AsnWriter(System.Formats.Asn1.AsnEncodingRules.DER);
        using (w.PushSequence())
        {
            w.WriteIntegerUnsigned(p1363.AsSpan(0, 32).TrimStart((byte)0)); // DER integers have no redundant leading zeros
            w.WriteIntegerUnsigned(p1363.AsSpan(32, 32).TrimStart((byte)0));
        }
        return w.Encode();
    }

    [Fact]
    public async Task Connecting_for_content_the_node_does_not_serve_is_dropped()
    {
        await using var seed = await SeededNode.StartAsync();
        using var key = NodeKey.Generate();
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            await peer.AdmitAsync(key);
            await peer.SendMessageAsync(new Hello(WireLimits.ProtocolVersion, key.NodeId, key.PublicKey, RandomNumberGenerator.GetBytes(32), Hash256.Random(), 0));
            Assert.Empty(await peer.WaitForCloseAsync(Timeout));
        }
        await seed.AssertStillServesAsync();
    }

    [Fact]
    public async Task Downloading_content_the_peer_does_not_serve_fails_with_a_clear_error()
    {
        await using var seed = await SeededNode.StartAsync();
        await using var leech = new TestNode(new EngineOptions { DialAttempts = 1 });
        var missing = new ContentId(Hash256.Random());
        var ct = TestContext.Current.CancellationToken;
        var e = await Assert.ThrowsAsync<PeerUnavailableException>(() => leech.Engine.DownloadAsync(missing, [seed.EndPoint], null, ct).WaitAsync(Timeout, ct));
        Assert.Contains(seed.EndPoint.ToString(), e.Message);
        Assert.Null(leech.Store.TryOpen(missing));
    }

    [Fact]
    public async Task Peer_speaking_another_protocol_version_is_dropped()
    {
        await using var seed = await SeededNode.StartAsync();
        using var key = NodeKey.Generate();
        await using var peer = await RawPeer.ConnectAsync(seed.EndPoint);
        await peer.AdmitAsync(key);
        await peer.SendMessageAsync(new Hello(WireLimits.ProtocolVersion + 1, key.NodeId, key.PublicKey, RandomNumberGenerator.GetBytes(32), seed.Id.Value, 0));
        Assert.Empty(await peer.WaitForCloseAsync(Timeout));
    }

    [Fact]
    public async Task Node_does_not_accept_a_connection_from_its_own_key()
    {
        await using var seed = await SeededNode.StartAsync();
        // By hand: the node must refuse before answering with its Hello.
        await using (var peer = await RawPeer.ConnectAsync(seed.EndPoint))
        {
            var key = seed.Node.Key;
            await peer.AdmitAsync(key);
            await peer.SendMessageAsync(new Hello(WireLimits.ProtocolVersion, key.NodeId, key.PublicKey, RandomNumberGenerator.GetBytes(32), seed.Id.Value, 0));
            Assert.Empty(await peer.WaitForCloseAsync(Timeout));
        }
        // Through the library's dialer with the node's own key.
        var ct = TestContext.Current.CancellationToken;
        using (var own = new TransportSecurity(seed.Node.Key, null, encrypt: true))
        await using (var connection = await FrameConnection.ConnectAsync(seed.EndPoint, Timeout, ct, own))
        {
            var e = await Record.ExceptionAsync(() => Handshake.InitiateAsync(connection, seed.Node.Key, seed.Id, 0, ct).WaitAsync(Timeout, ct));
            Assert.True(e is WireProtocolException or IOException, $"expected the handshake to fail, got {e?.GetType().Name ?? "success"}: {e?.Message}");
        }
        Assert.Equal(0, Peers(seed));
        // Control: the same dialer with a fresh key succeeds.
        using var fresh = NodeKey.Generate();
        using (var freshSecurity = new TransportSecurity(fresh, null, encrypt: true))
        await using (var connection = await FrameConnection.ConnectAsync(seed.EndPoint, Timeout, ct, freshSecurity))
        {
            var peer = await Handshake.InitiateAsync(connection, fresh, seed.Id, 0, ct).WaitAsync(Timeout, ct);
            Assert.Equal(seed.Node.Key.NodeId, peer.NodeId);
        }
    }

    // ---- the dialer's side, against a hand-driven acceptor ----

    private delegate Task AcceptorScript(RawPeer peer, Hello dialerHello);

    /// <summary>Runs <see cref="Handshake.InitiateAsync"/> against an acceptor that answers with <paramref name="script"/>; returns the dialer's error.</summary>
    private static async Task<Exception?> DialFakeAcceptorAsync(NodeKey dialer, ContentId content, AcceptorScript script)
    {
        var ct = TestContext.Current.CancellationToken;
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var acceptor = Task.Run(async () =>
        {
            using var socket = await listener.AcceptAsync(ct);
            await using var peer = RawPeer.Wrap(socket);
            var hello = (await peer.ExpectFrameAsync(MessageKind.Hello, Timeout)).Decode<Hello>();
            await script(peer, hello);
            await peer.WaitForCloseAsync(Timeout);
        }, ct);
        Exception? error;
        await using (var connection = await FrameConnection.ConnectAsync((IPEndPoint)listener.LocalEndPoint!, Timeout, ct))
        {
            error = await Record.ExceptionAsync(() => Handshake.InitiateAsync(connection, dialer, content, 0, ct).WaitAsync(Timeout, ct));
        }
        await acceptor.WaitAsync(Timeout, ct);
        return error;
    }

    private static async Task AnswerAsync(RawPeer peer, Hello dialerHello, NodeKey signer, Hash256 claimedId, byte[] publicKey, Hash256 content, Func<byte[], byte[], byte[]>? proof = null)
    {
        byte[] nonce = RandomNumberGenerator.GetBytes(Hello.NonceLength);
        await peer.SendMessageAsync(new Hello(WireLimits.ProtocolVersion, claimedId, publicKey, nonce, content, 1234));
        byte[] payload = RawPeer.HandshakePayload(dialerHello.Nonce, nonce, content, claimedId);
        await peer.SendIgnoringResetAsync(RawPeer.Frame(new HelloProof(proof?.Invoke(payload, nonce) ?? signer.Sign(payload))));
    }

    [Fact]
    public async Task Dialer_accepts_a_correct_acceptor_and_sends_a_valid_proof()
    {
        using var dialer = NodeKey.Generate();
        using var acceptorKey = NodeKey.Generate();
        var content = new ContentId(Hash256.Random());
        byte[]? acceptorNonce = null;
        bool dialerProofValid = false;
        var e = await DialFakeAcceptorAsync(dialer, content, async (peer, hello) =>
        {
            acceptorNonce = RandomNumberGenerator.GetBytes(Hello.NonceLength);
            await peer.SendMessageAsync(new Hello(WireLimits.ProtocolVersion, acceptorKey.NodeId, acceptorKey.PublicKey, acceptorNonce, content.Value, 1234));
            await peer.SendMessageAsync(new HelloProof(acceptorKey.Sign(RawPeer.HandshakePayload(hello.Nonce, acceptorNonce, content.Value, acceptorKey.NodeId))));
            var proof = (await peer.ExpectFrameAsync(MessageKind.HelloProof, Timeout)).Decode<HelloProof>();
            dialerProofValid = EcdsaSignature.Verify(dialer.PublicKey, RawPeer.HandshakePayload(acceptorNonce, hello.Nonce, content.Value, dialer.NodeId), proof.Signature);
        });
        Assert.Null(e);
        Assert.True(dialerProofValid, "the dialer's proof does not verify");
    }

    [Fact]
    public async Task Dialer_drops_an_acceptor_whose_id_is_not_the_hash_of_its_key()
    {
        using var dialer = NodeKey.Generate();
        using var acceptor = NodeKey.Generate();
        var content = new ContentId(Hash256.Random());
        var e = await DialFakeAcceptorAsync(dialer, content, (peer, hello) => AnswerAsync(peer, hello, acceptor, Hash256.Random(), acceptor.PublicKey, content.Value));
        Assert.IsType<WireProtocolException>(e);
        Assert.Contains("hash of its public key", e.Message);
    }

    [Fact]
    public async Task Dialer_drops_an_acceptor_with_a_bad_proof()
    {
        using var dialer = NodeKey.Generate();
        using var acceptor = NodeKey.Generate();
        using var other = NodeKey.Generate();
        var content = new ContentId(Hash256.Random());
        var e = await DialFakeAcceptorAsync(dialer, content, (peer, hello) => AnswerAsync(peer, hello, acceptor, acceptor.NodeId, acceptor.PublicKey, content.Value, (payload, _) => other.Sign(payload)));
        Assert.IsType<WireProtocolException>(e);
        Assert.Contains("signature is invalid", e.Message);
    }

    [Fact]
    public async Task Dialer_drops_an_acceptor_that_answers_for_other_content()
    {
        using var dialer = NodeKey.Generate();
        using var acceptor = NodeKey.Generate();
        var content = new ContentId(Hash256.Random());
        var e = await DialFakeAcceptorAsync(dialer, content, (peer, hello) => AnswerAsync(peer, hello, acceptor, acceptor.NodeId, acceptor.PublicKey, Hash256.Random()));
        Assert.IsType<WireProtocolException>(e);
        Assert.Contains("other content", e.Message);
    }

    [Fact]
    public async Task Dialer_refuses_to_connect_to_itself()
    {
        using var dialer = NodeKey.Generate();
        var content = new ContentId(Hash256.Random());
        var e = await DialFakeAcceptorAsync(dialer, content, (peer, hello) => AnswerAsync(peer, hello, dialer, dialer.NodeId, dialer.PublicKey, content.Value));
        Assert.IsType<WireProtocolException>(e);
        Assert.Contains("itself", e.Message);
    }
}
