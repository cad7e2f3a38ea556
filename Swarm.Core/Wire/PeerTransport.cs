using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Swarm.Core.Identity;

namespace Swarm.Core.Wire;

/// <summary>How a node protects its peer connections: the swarm key (null: an open swarm) and whether traffic is encrypted.</summary>
public sealed class TransportSecurity : IDisposable
{
    private readonly X509Certificate2? _certificate;

    public TransportSecurity(NodeKey nodeKey, SwarmKey? swarmKey, bool encrypt)
    {
        SwarmKey = swarmKey;
        Encrypt = encrypt;
        AdmissionKey = swarmKey?.Derive("swarm/tcp-admission/v1");
        if (encrypt)
        {
            _certificate = nodeKey.CreateCertificate();
            ServerContext = SslStreamCertificateContext.Create(_certificate, additionalCertificates: null, offline: true);
        }
    }

    public SwarmKey? SwarmKey { get; }
    public bool Encrypt { get; }
    internal byte[]? AdmissionKey { get; }
    internal SslStreamCertificateContext? ServerContext { get; }
    internal X509Certificate2? Certificate => _certificate;

    /// <summary>The preamble's flags byte: what this side requires of the other.</summary>
    internal byte Flags => (byte)((SwarmKey != null ? PeerTransport.FlagKeyed : 0) | (Encrypt ? PeerTransport.FlagEncrypted : 0));

    public void Dispose() => _certificate?.Dispose();
}

/// <summary>Why a connection was refused before any session existed; the metrics and the refusal summary count by it.</summary>
public enum AdmissionFailure
{
    /// <summary>The first bytes are not a Swarm preamble (a port scanner, another protocol).</summary>
    NotSwarm,
    /// <summary>Nothing (or not enough) arrived before the deadline.</summary>
    Timeout,
    /// <summary>The other side holds another swarm key, or none where this side has one (or the reverse).</summary>
    SwarmKey,
    /// <summary>One side encrypts and the other does not.</summary>
    Encryption,
    /// <summary>The TLS handshake failed, or the certificate's key is not the node's.</summary>
    Tls,
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
/// <item>With encryption, TLS 1.3 (SslStream over OpenSSL) with a certificate from each node's key on both sides. The
/// certificates are not chained to anything: the peer's certificate key must be the key the peer's Hello then
/// presents, which hashes to its node id (checked by the handshake), so the TLS channel is pinned to the node id.</item>
/// <item>With a swarm key and encryption, a binding inside TLS: each side sends HMAC(key, role | nonces | both
/// certificate keys). A relay that passed the preamble through and ran TLS with each side itself cannot produce it.</item>
/// </list>
/// </summary>
public static class PeerTransport
{
    internal const byte FlagKeyed = 1, FlagEncrypted = 2;
    private const int NonceLength = 32, MacLength = 32;
    private const int DialerPreambleLength = 4 + 1 + 1 + NonceLength;
    private const int AcceptorPreambleLength = DialerPreambleLength + MacLength;
    private const byte Version = 1;
    private static ReadOnlySpan<byte> Magic => "SWRM"u8;

    /// <summary>A connection past admission: the stream to speak frames on, and the peer's TLS key (null unencrypted).</summary>
    public readonly record struct Admitted(Stream Stream, byte[]? PeerCertificateKey);

    public static async Task<Admitted> DialAsync(Socket socket, TransportSecurity security, CancellationToken cancellationToken)
    {
        var endPoint = (IPEndPoint)socket.RemoteEndPoint!;
        var network = new NetworkStream(socket, ownsSocket: false);
        try
        {
            byte[] mine = new byte[DialerPreambleLength];
            Magic.CopyTo(mine);
            mine[4] = Version;
            mine[5] = security.Flags;
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
        catch
        {
            await network.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public static async Task<Admitted> AcceptAsync(Socket socket, TransportSecurity security, CancellationToken cancellationToken, Action? onPreamble = null)
    {
        var endPoint = (IPEndPoint)socket.RemoteEndPoint!;
        var network = new NetworkStream(socket, ownsSocket: false);
        try
        {
            byte[] theirs = new byte[DialerPreambleLength];
            await ReadExactlyAsync(network, theirs, endPoint, cancellationToken).ConfigureAwait(false);
            CheckMagic(theirs, endPoint);
            byte[] mine = new byte[AcceptorPreambleLength];
            Magic.CopyTo(mine);
            mine[4] = Version;
            mine[5] = security.Flags;
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
        catch
        {
            await network.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static async Task<Admitted> SecureAsync(NetworkStream network, TransportSecurity security, byte[] nonces, IPEndPoint endPoint, bool client,
        CancellationToken cancellationToken)
    {
        byte[]? peerKey = null;
        bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
        {
            // Self-signed on purpose: what counts is the key, which the handshake pins to the node id.
            if (certificate == null) return false;
            peerKey = NodeKey.CertificateKey(certificate);
            return peerKey != null;
        }
        var ssl = new SslStream(network, leaveInnerStreamOpen: false, Validate);
        try
        {
            if (client)
            {
                await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = "swarm",
                    ClientCertificateContext = security.ServerContext,
                    EnabledSslProtocols = SslProtocols.Tls13,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    AllowRenegotiation = false,
                    CipherSuitesPolicy = CipherSuites,
                }, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
                {
                    ServerCertificateContext = security.ServerContext,
                    ClientCertificateRequired = true,
                    EnabledSslProtocols = SslProtocols.Tls13,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    AllowRenegotiation = false,
                    CipherSuitesPolicy = CipherSuites,
                }, cancellationToken).ConfigureAwait(false);
            }
            if (peerKey == null) throw new AdmissionException(AdmissionFailure.Tls, $"peer {endPoint} presented no usable certificate");
            if (security.AdmissionKey is { } key)
            {
                byte[] own = NodeKey.CertificateKey(security.Certificate!)!;
                var (server, clientKey) = client ? (peerKey, own) : (own, peerKey);
                byte[] binding = Binding(key, client ? 'C' : 'S', nonces, server, clientKey);
                await ssl.WriteAsync(binding, cancellationToken).ConfigureAwait(false);
                await ssl.FlushAsync(cancellationToken).ConfigureAwait(false);
                byte[] theirs = new byte[MacLength];
                await ReadExactlyAsync(ssl, theirs, endPoint, cancellationToken).ConfigureAwait(false);
                if (!CryptographicOperations.FixedTimeEquals(Binding(key, client ? 'S' : 'C', nonces, server, clientKey), theirs))
                    throw new AdmissionException(AdmissionFailure.SwarmKey, $"peer {endPoint} failed the swarm-key check inside TLS (a relay between two members?)");
            }
            return new Admitted(ssl, peerKey);
        }
        catch (AuthenticationException e)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new AdmissionException(AdmissionFailure.Tls, $"TLS with {endPoint} failed: {e.Message}");
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>AES-GCM first (hardware AES on every server CPU), ChaCha20 for hosts without it.</summary>
    private static readonly CipherSuitesPolicy? CipherSuites = OperatingSystem.IsLinux()
        ? new CipherSuitesPolicy([TlsCipherSuite.TLS_AES_128_GCM_SHA256, TlsCipherSuite.TLS_AES_256_GCM_SHA384, TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256])
        : null;

    private static async Task ReadExactlyAsync(Stream stream, byte[] buffer, IPEndPoint endPoint, CancellationToken cancellationToken,
        AdmissionFailure onClose = AdmissionFailure.NotSwarm, string closed = "closed the connection during admission")
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

    private static byte[] Nonces(ReadOnlySpan<byte> dialer, ReadOnlySpan<byte> acceptor)
    {
        byte[] both = new byte[2 * NonceLength];
        dialer.CopyTo(both);
        acceptor.CopyTo(both.AsSpan(NonceLength));
        return both;
    }

    private static byte[] Mac(byte[] key, char role, byte[] nonces)
    {
        Span<byte> data = stackalloc byte[1 + 2 * NonceLength];
        data[0] = (byte)role;
        nonces.CopyTo(data[1..]);
        return HMACSHA256.HashData(key, data);
    }

    private static byte[] Binding(byte[] key, char role, byte[] nonces, byte[] serverKey, byte[] clientKey)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key);
        Span<byte> head = stackalloc byte[1 + 4];
        head[0] = (byte)role;
        hmac.AppendData(head[..1]);
        hmac.AppendData(nonces);
        BinaryPrimitives.WriteInt32BigEndian(head[1..], serverKey.Length);
        hmac.AppendData(head[1..]);
        hmac.AppendData(serverKey);
        hmac.AppendData(clientKey);
        return hmac.GetHashAndReset();
    }
}
