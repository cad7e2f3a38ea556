using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Swarm.Core.Identity;

namespace Swarm.Core.Wire;

/// <summary>How a node protects its peer connections: the swarm key (null: an open swarm) and whether traffic is encrypted.</summary>
public sealed class TransportSecurity : IDisposable
{
    public TransportSecurity(NodeKey nodeKey, SwarmKey? swarmKey, bool encrypt)
    {
        NodeKey = nodeKey;
        SwarmKey = swarmKey;
        Encrypt = encrypt;
        AdmissionKey = swarmKey?.Derive("swarm/tcp-admission/v1");
        ChannelKey = swarmKey?.Derive("swarm/tcp-channel/v1");
    }

    public SwarmKey? SwarmKey { get; }
    public bool Encrypt { get; }
    internal NodeKey NodeKey { get; }
    internal byte[]? AdmissionKey { get; }
    /// <summary>Mixed into the channel's keys: without the swarm key, a relay cannot read or write a member's channel.</summary>
    internal byte[]? ChannelKey { get; }

    /// <summary>The preamble's flags byte: what this side requires of the other.</summary>
    internal byte Flags => (byte)((SwarmKey != null ? PeerTransport.FlagKeyed : 0) | (Encrypt ? PeerTransport.FlagEncrypted : 0));

    public void Dispose()
    {
        if (AdmissionKey != null) CryptographicOperations.ZeroMemory(AdmissionKey);
        if (ChannelKey != null) CryptographicOperations.ZeroMemory(ChannelKey);
    }
}

/// <summary>Why a connection was refused before any session existed; the metrics and the refusal summary count by it.</summary>
public enum AdmissionFailure
{
    /// <summary>The first bytes are not a Swarm preamble (a port scanner, another protocol).</summary>
    NotSwarm,
    /// <summary>The other side hung up before its preamble was complete (often a dialler that gave up; no news).</summary>
    Closed,
    /// <summary>Nothing (or not enough) arrived before the deadline.</summary>
    Timeout,
    /// <summary>The other side holds another swarm key, or none where this side has one (or the reverse).</summary>
    SwarmKey,
    /// <summary>One side encrypts and the other does not.</summary>
    Encryption,
    /// <summary>The encrypted channel's handshake failed (malformed, or not signed by the key it presents).</summary>
    Channel,
}

/// <summary>A connection refused during admission, with the reason in Swarm's words.</summary>
public sealed class AdmissionException(AdmissionFailure failure, string message) : WireProtocolException(message)
{
    public AdmissionFailure Failure { get; } = failure;
}

/// <summary>
/// What happens on a new TCP connection before the frames start, in this order:
/// <list type="number">
/// <item>A fixed-size preamble. Dialer: magic "SWRM", version, flags (keyed, encrypted), a 32-byte nonce (38 bytes).
/// Acceptor: magic, version, its flags, its nonce and, with a swarm key, HMAC(key, "A" | both nonces) (70 bytes). Dialer,
/// with a key: HMAC(key, "D" | both nonces) (32 bytes). So a keyed acceptor has read at most 70 bytes, kept no state
/// and sent nothing that names content before the dialer proved it holds the key; each side's proof covers the other
/// side's fresh nonce, so a recorded proof is worth nothing. Flags that differ end the exchange with a reason both sides
/// can report ("the peer has no swarm key").</item>
/// <item>With encryption, the channel's handshake (one message each way, see <see cref="SecureAsync"/>): ephemeral ECDH
/// keys signed by the node keys, session keys from HKDF, then AES-128-GCM records (<see cref="EncryptedStream"/>). The
/// node key the peer signed with must be the key its Hello then presents, which hashes to its node id (checked by the
/// handshake), so the channel is pinned to the node id.</item>
/// <item>In a private swarm a key derived from the swarm key goes into the channel's key derivation too: a relay that
/// passed the preamble through and ran the channel handshake with each side itself has keys neither side uses.</item>
/// </list>
/// </summary>
public static class PeerTransport
{
    internal const byte FlagKeyed = 1, FlagEncrypted = 2;
    internal const int NonceLength = 32, MacLength = 32;
    internal const int DialerPreambleLength = 4 + 1 + 1 + NonceLength;
    internal const int AcceptorPreambleLength = DialerPreambleLength + MacLength;
    private const byte Version = 1;
    private static ReadOnlySpan<byte> Magic => "SWRM"u8;

    /// <summary>A connection past admission: the stream to speak frames on, and the node key the peer signed the channel with (null unencrypted).</summary>
    public readonly record struct Admitted(Stream Stream, byte[]? PeerKey);

    public static async Task<Admitted> DialAsync(Socket socket, TransportSecurity security, CancellationToken cancellationToken)
    {
        var endPoint = (IPEndPoint)socket.RemoteEndPoint!;
        var network = new NetworkStream(socket, ownsSocket: false);
        try
        {
            return await DialAsync(network, endPoint, security, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await network.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The dialer's admission over <paramref name="network"/> (a socket's stream; the fuzz harness plays the acceptor in memory).</summary>
    internal static async Task<Admitted> DialAsync(Stream network, IPEndPoint endPoint, TransportSecurity security, CancellationToken cancellationToken)
    {
        byte[] mine = Preamble(DialerPreambleLength, security);
        RandomNumberGenerator.Fill(mine.AsSpan(6, NonceLength));
        await network.WriteAsync(mine, cancellationToken).ConfigureAwait(false);

        byte[] theirs = new byte[AcceptorPreambleLength];
        await ReadExactlyAsync(network, theirs, endPoint, cancellationToken).ConfigureAwait(false);
        CheckMagic(theirs, endPoint);
        CheckFlags(security.Flags, theirs[5], endPoint, dialer: true);
        var nonces = Nonces(mine.AsSpan(6, NonceLength), theirs.AsSpan(6, NonceLength));
        if (security.AdmissionKey is { } key)
        {
            if (!CryptographicOperations.FixedTimeEquals(Mac(key, 'A', nonces), theirs.AsSpan(DialerPreambleLength, MacLength)))
                throw new AdmissionException(AdmissionFailure.SwarmKey, $"peer {endPoint} belongs to a swarm with another swarm key");
            await network.WriteAsync(Mac(key, 'D', nonces), cancellationToken).ConfigureAwait(false);
        }
        if (!security.Encrypt) return new Admitted(network, null);
        return await SecureAsync(network, security, nonces, endPoint, client: true, cancellationToken).ConfigureAwait(false);
    }

    public static async Task<Admitted> AcceptAsync(Socket socket, TransportSecurity security, CancellationToken cancellationToken, Action? onPreamble = null)
    {
        var endPoint = (IPEndPoint)socket.RemoteEndPoint!;
        var network = new NetworkStream(socket, ownsSocket: false);
        try
        {
            return await AcceptAsync(network, endPoint, security, cancellationToken, onPreamble).ConfigureAwait(false);
        }
        catch
        {
            await network.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The acceptor's admission over <paramref name="network"/> (a socket's stream; the fuzz harness plays the dialer in memory).</summary>
    internal static async Task<Admitted> AcceptAsync(Stream network, IPEndPoint endPoint, TransportSecurity security, CancellationToken cancellationToken,
        Action? onPreamble = null)
    {
        byte[] theirs = new byte[DialerPreambleLength];
        await ReadExactlyAsync(network, theirs, endPoint, cancellationToken).ConfigureAwait(false);
        CheckMagic(theirs, endPoint);
        byte[] mine = Preamble(AcceptorPreambleLength, security);
        if (theirs[4] != Version || theirs[5] != security.Flags)
        {
            // Tell the dialer what this side requires (flags only, no nonce, no proof), so it can say why it failed.
            await network.WriteAsync(mine, cancellationToken).ConfigureAwait(false);
            if (theirs[4] != Version) throw new AdmissionException(AdmissionFailure.NotSwarm, $"{endPoint} speaks transport version {theirs[4]}, this node {Version}");
            CheckFlags(security.Flags, theirs[5], endPoint, dialer: false);
        }
        RandomNumberGenerator.Fill(mine.AsSpan(6, NonceLength));
        var nonces = Nonces(theirs.AsSpan(6, NonceLength), mine.AsSpan(6, NonceLength));
        if (security.AdmissionKey is { } key) Mac(key, 'A', nonces).CopyTo(mine, DialerPreambleLength);
        await network.WriteAsync(mine, cancellationToken).ConfigureAwait(false);
        if (security.AdmissionKey is { } k)
        {
            byte[] proof = new byte[MacLength];
            // A dialer that found our proof wrong (another swarm's key) hangs up here instead of proving anything.
            await ReadExactlyAsync(network, proof, endPoint, cancellationToken, AdmissionFailure.SwarmKey,
                "closed the connection instead of proving it holds this swarm's key (it has another key)").ConfigureAwait(false);
            if (!CryptographicOperations.FixedTimeEquals(Mac(k, 'D', nonces), proof))
                throw new AdmissionException(AdmissionFailure.SwarmKey, $"{endPoint} does not hold this swarm's key");
        }
        onPreamble?.Invoke(); // a member (or, in an open swarm, a Swarm peer) is speaking: only the handshake's deadline from here
        if (!security.Encrypt) return new Admitted(network, null);
        return await SecureAsync(network, security, nonces, endPoint, client: false, cancellationToken).ConfigureAwait(false);
    }

    private const int EphemeralLength = 65, SignatureLength = 64;
    private static ReadOnlySpan<byte> ChannelTag => "swarm/channel/v1"u8;

    /// <summary>
    /// The encrypted channel's handshake, one message each way at once: an ephemeral ECDH P-256 key, the node's public key
    /// (SPKI) and the node key's signature over the channel tag, the role, both preamble nonces and the ephemeral key — so
    /// the ephemeral key is the node's, for this connection only. Keys: HKDF-SHA256 over the ECDH secret (and, in a
    /// private swarm, a key derived from the swarm key), salted with both nonces, bound to both ephemeral and both node
    /// keys; one AES-128-GCM key per direction.
    /// </summary>
    private static async Task<Admitted> SecureAsync(Stream network, TransportSecurity security, byte[] nonces, IPEndPoint endPoint, bool client,
        CancellationToken cancellationToken)
    {
        using var ephemeral = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var q = ephemeral.ExportParameters(includePrivateParameters: false).Q;
        byte[] ownEphemeral = [0x04, .. q.X!, .. q.Y!];
        byte[] ownKey = security.NodeKey.PublicKey;
        byte role = client ? (byte)'D' : (byte)'A';
        byte[] message = [.. ownEphemeral, .. BitConverter.GetBytes((ushort)ownKey.Length).Reverse(), .. ownKey,
            .. security.NodeKey.Sign(Signed(role, nonces, ownEphemeral))];
        var sending = network.WriteAsync(message, cancellationToken).AsTask();

        byte[] head = new byte[EphemeralLength + 2];
        await ReadExactlyAsync(network, head, endPoint, cancellationToken, AdmissionFailure.Encryption, "closed the connection during the encrypted handshake").ConfigureAwait(false);
        int keyLength = BinaryPrimitives.ReadUInt16BigEndian(head.AsSpan(EphemeralLength));
        if (head[0] != 0x04 || keyLength is < 32 or > 256)
            throw new AdmissionException(AdmissionFailure.Encryption, $"peer {endPoint} sent a malformed encrypted handshake");
        byte[] rest = new byte[keyLength + SignatureLength];
        await ReadExactlyAsync(network, rest, endPoint, cancellationToken, AdmissionFailure.Encryption, "closed the connection during the encrypted handshake").ConfigureAwait(false);
        await sending.ConfigureAwait(false);
        byte[] peerEphemeral = head[..EphemeralLength];
        byte[] peerKey = rest[..keyLength];
        if (!Content.EcdsaSignature.Verify(peerKey, Signed(client ? (byte)'A' : (byte)'D', nonces, peerEphemeral), rest.AsSpan(keyLength)))
            throw new AdmissionException(AdmissionFailure.Encryption, $"peer {endPoint}'s encrypted handshake is not signed by the key it presents");

        byte[] secret;
        try
        {
            using var theirs = ECDiffieHellman.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = peerEphemeral[1..33], Y = peerEphemeral[33..] },
            });
            secret = ephemeral.DeriveRawSecretAgreement(theirs.PublicKey);
        }
        catch (CryptographicException)
        {
            throw new AdmissionException(AdmissionFailure.Encryption, $"peer {endPoint} sent an ephemeral key that is not on the curve");
        }
        var (dialerEphemeral, acceptorEphemeral) = client ? (ownEphemeral, peerEphemeral) : (peerEphemeral, ownEphemeral);
        var (dialerKey, acceptorKey) = client ? (ownKey, peerKey) : (peerKey, ownKey);
        byte[] ikm = [.. secret, .. security.ChannelKey ?? []];
        byte[] info = [.. ChannelTag, .. dialerEphemeral, .. acceptorEphemeral, .. dialerKey, .. acceptorKey];
        byte[] keys = HKDF.DeriveKey(HashAlgorithmName.SHA256, ikm, 32, nonces, info);
        CryptographicOperations.ZeroMemory(secret);
        CryptographicOperations.ZeroMemory(ikm);
        var toAcceptor = keys.AsSpan(0, 16);
        var toDialer = keys.AsSpan(16, 16);
        var stream = new EncryptedStream(network, client ? toAcceptor : toDialer, client ? toDialer : toAcceptor);
        CryptographicOperations.ZeroMemory(keys);
        return new Admitted(stream, peerKey);
    }

    /// <summary>What a side's node key signs in the channel's handshake: the tag, its role ('D' or 'A'), both nonces, its ephemeral key.</summary>
    internal static byte[] Signed(byte role, byte[] nonces, byte[] ephemeral) => [.. ChannelTag, role, .. nonces, .. ephemeral];

    private static async Task ReadExactlyAsync(Stream stream, byte[] buffer, IPEndPoint endPoint, CancellationToken cancellationToken,
        AdmissionFailure onClose = AdmissionFailure.Closed, string closed = "closed the connection during admission")
    {
        try
        {
            await stream.ReadExactlyAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException)
        {
            throw new AdmissionException(onClose, $"{endPoint} {closed}");
        }
        catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException)
        {
            throw new AdmissionException(onClose, $"{endPoint} {closed}");
        }
    }

    /// <summary>A preamble of <paramref name="length"/> bytes with this side's magic, version and flags; nonce and proof still zero.</summary>
    private static byte[] Preamble(int length, TransportSecurity security)
    {
        byte[] preamble = new byte[length];
        Magic.CopyTo(preamble);
        preamble[4] = Version;
        preamble[5] = security.Flags;
        return preamble;
    }

    private static void CheckMagic(byte[] preamble, IPEndPoint endPoint)
    {
        if (!preamble.AsSpan(0, 4).SequenceEqual(Magic)) throw new AdmissionException(AdmissionFailure.NotSwarm, $"{endPoint} is not a Swarm peer");
    }

    private static void CheckFlags(byte own, byte theirs, IPEndPoint endPoint, bool dialer)
    {
        string who = dialer ? $"peer {endPoint}" : $"{endPoint}";
        bool ownKeyed = (own & FlagKeyed) != 0, theirKeyed = (theirs & FlagKeyed) != 0;
        if (ownKeyed != theirKeyed)
            throw new AdmissionException(AdmissionFailure.SwarmKey, ownKeyed
                ? $"{who} has no swarm key, and this node admits only members of its private swarm"
                : $"{who} belongs to a private swarm (it has a swarm key) and this node has none");
        bool ownEncrypted = (own & FlagEncrypted) != 0, theirEncrypted = (theirs & FlagEncrypted) != 0;
        if (ownEncrypted != theirEncrypted)
            throw new AdmissionException(AdmissionFailure.Encryption, ownEncrypted
                ? $"{who} sends peer traffic unencrypted, and this node encrypts it"
                : $"{who} encrypts peer traffic, and this node has encryption turned off");
        if (own != theirs) throw new AdmissionException(AdmissionFailure.NotSwarm, $"{who} sent unknown transport flags {theirs}");
    }

    internal static byte[] Nonces(ReadOnlySpan<byte> dialer, ReadOnlySpan<byte> acceptor)
    {
        byte[] both = new byte[2 * NonceLength];
        dialer.CopyTo(both);
        acceptor.CopyTo(both.AsSpan(NonceLength));
        return both;
    }

    /// <summary>A side's admission proof: HMAC(admission key, role ('A' or 'D') | dialer's nonce | acceptor's nonce).</summary>
    internal static byte[] Mac(byte[] key, char role, byte[] nonces)
    {
        Span<byte> data = stackalloc byte[1 + 2 * NonceLength];
        data[0] = (byte)role;
        nonces.CopyTo(data[1..]);
        return HMACSHA256.HashData(key, data);
    }
}
