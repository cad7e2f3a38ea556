using System.Security.Cryptography;
using Swarm.Core.Content;
using Swarm.Core.Identity;
using Swarm.Core.Wire;

namespace Swarm.Core.Exchange;

/// <summary>Who is at the other end of a connection, proven by a signature over our nonce.</summary>
public sealed record PeerIdentity(Hash256 NodeId, byte[] PublicKey, int ListenPort);

/// <summary>
/// The handshake: the dialer sends Hello (version, node id, public key, nonce, content id); the acceptor answers with its
/// Hello and a proof (its signature over the dialer's nonce); the dialer checks it and sends its own proof.
/// A node whose id is not the hash of its key, or whose signature fails, is dropped.
/// </summary>
public static class Handshake
{
    public static async Task<PeerIdentity> InitiateAsync(FrameConnection connection, NodeKey key, ContentId content, int listenPort, CancellationToken cancellationToken)
    {
        byte[] nonce = RandomNumberGenerator.GetBytes(Hello.NonceLength);
        await connection.SendAsync(new Hello(WireLimits.ProtocolVersion, key.NodeId, key.PublicKey, nonce, content.Value, listenPort), cancellationToken).ConfigureAwait(false);
        var hello = await connection.ReceiveOneAsync(Expect<Hello>, cancellationToken, MessageKind.Hello).ConfigureAwait(false);
        Validate(hello, key, connection);
        if (hello.ContentId != content.Value) throw new WireProtocolException("peer answered for other content");
        var proof = await connection.ReceiveOneAsync(Expect<HelloProof>, cancellationToken, MessageKind.HelloProof).ConfigureAwait(false);
        if (!EcdsaSignature.Verify(hello.PublicKey, Payload(nonce, hello.Nonce, content.Value, hello.NodeId), proof.Signature))
            throw new WireProtocolException("peer's handshake signature is invalid");
        await connection.SendAsync(new HelloProof(key.Sign(Payload(hello.Nonce, nonce, content.Value, key.NodeId))), cancellationToken).ConfigureAwait(false);
        return new PeerIdentity(hello.NodeId, hello.PublicKey, hello.ListenPort);
    }

    public static async Task<(PeerIdentity Peer, ContentId Content)> AcceptAsync(FrameConnection connection, NodeKey key, Func<ContentId, bool> serves, int listenPort, CancellationToken cancellationToken)
    {
        var hello = await connection.ReceiveOneAsync(Expect<Hello>, cancellationToken, MessageKind.Hello).ConfigureAwait(false);
        Validate(hello, key, connection);
        var content = new ContentId(hello.ContentId);
        if (!serves(content)) throw new WireProtocolException($"peer asked for {content}, which this node does not serve");
        byte[] nonce = RandomNumberGenerator.GetBytes(Hello.NonceLength);
        await connection.SendAsync(new Hello(WireLimits.ProtocolVersion, key.NodeId, key.PublicKey, nonce, content.Value, listenPort), cancellationToken).ConfigureAwait(false);
        await connection.SendAsync(new HelloProof(key.Sign(Payload(hello.Nonce, nonce, content.Value, key.NodeId))), cancellationToken).ConfigureAwait(false);
        var proof = await connection.ReceiveOneAsync(Expect<HelloProof>, cancellationToken, MessageKind.HelloProof).ConfigureAwait(false);
        if (!EcdsaSignature.Verify(hello.PublicKey, Payload(nonce, hello.Nonce, content.Value, hello.NodeId), proof.Signature))
            throw new WireProtocolException("peer's handshake signature is invalid");
        return (new PeerIdentity(hello.NodeId, hello.PublicKey, hello.ListenPort), content);
    }

    private static T Expect<T>(Frame frame) where T : IWireMessage<T>
    {
        if (frame.Kind != T.Kind) throw new WireProtocolException($"expected {T.Kind} during the handshake, got {frame.Kind}");
        return WireMessage.Decode<T>(frame.Body);
    }

    private static void Validate(Hello hello, NodeKey key, FrameConnection connection)
    {
        // The channel's handshake proved the peer holds the key it signed with; the Hello's key must be that key, so the channel belongs to the node id.
        if (connection.PeerKey is { } channelKey && !channelKey.AsSpan().SequenceEqual(hello.PublicKey))
            throw new WireProtocolException("peer's encrypted channel was signed by another key than its node key");
        if (hello.Version != WireLimits.ProtocolVersion) throw new WireProtocolException($"peer speaks protocol version {hello.Version}, this node speaks {WireLimits.ProtocolVersion}; upgrade the older one");
        if (Hash256.Of(hello.PublicKey) != hello.NodeId) throw new WireProtocolException("peer's node id is not the hash of its public key");
        if (hello.NodeId == key.NodeId) throw new WireProtocolException("connected to itself (the same node key): two nodes run from one data directory");
    }

    /// <summary>What a side signs: a domain tag, the verifier's nonce, the signer's nonce, the content id and the signer's id.</summary>
    private static byte[] Payload(byte[] verifierNonce, byte[] signerNonce, Hash256 content, Hash256 signer)
    {
        byte[] tag = "swarm/handshake/v1"u8.ToArray();
        var payload = new byte[tag.Length + verifierNonce.Length + signerNonce.Length + 2 * Hash256.Size];
        int at = 0;
        tag.CopyTo(payload, at); at += tag.Length;
        verifierNonce.CopyTo(payload, at); at += verifierNonce.Length;
        signerNonce.CopyTo(payload, at); at += signerNonce.Length;
        content.CopyTo(payload.AsSpan(at)); at += Hash256.Size;
        signer.CopyTo(payload.AsSpan(at));
        return payload;
    }
}
