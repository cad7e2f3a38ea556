using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Swarm.Core.Dht;

internal enum AuthResult
{
    Ok,
    /// <summary>Too short to carry an authenticator, or the MAC is wrong: an outsider, or a node with another swarm key.</summary>
    BadMac,
    /// <summary>The timestamp is outside the replay window (see <see cref="ReplayCache"/>).</summary>
    OutsideWindow,
    /// <summary>This exact datagram was accepted before.</summary>
    Replayed,
}

/// <summary>
/// The swarm-key authenticator of DHT datagrams: <c>message || timestamp || mac</c>, where the timestamp is the sender's
/// wall clock in unix milliseconds (8 bytes, big-endian) and the MAC is HMAC-SHA256 over message and timestamp, truncated
/// to 16 bytes. The MAC key is not the swarm key itself but HKDF-SHA256(swarm key, info "swarm/dht/v1"), so the TCP side
/// can derive its own key from the same secret and a MAC of one never passes for the other.
/// </summary>
/// <remarks>
/// A datagram is accepted when its MAC verifies, its timestamp is within ±<see cref="DhtOptions.ReplayWindow"/> of our
/// clock (a fleet's clocks are NTP-synced), and the same datagram was not accepted before (<see cref="ReplayCache"/>).
/// The MAC does not name the recipient: a datagram captured on the wire can still be sent once to another member within
/// the window (announce and put tokens are bound to the node that issued them, so that only repeats a question).
/// </remarks>
internal sealed class DatagramAuthenticator
{
    /// <summary>HKDF info for the DHT's key; the TCP side uses its own.</summary>
    public const string KeyInfo = "swarm/dht/v1";

    private readonly byte[] _key;
    private readonly TimeProvider _time;
    private readonly ReplayCache _replays;

    public DatagramAuthenticator(byte[] swarmKey, TimeSpan window, int maxRemembered, TimeProvider time)
    {
        _key = DeriveKey(swarmKey);
        _time = time;
        _replays = new ReplayCache(window, maxRemembered);
    }

    public static byte[] DeriveKey(byte[] swarmKey) =>
        HKDF.DeriveKey(HashAlgorithmName.SHA256, swarmKey, 32, salt: null, info: Encoding.ASCII.GetBytes(KeyInfo));

    internal ReplayCache Replays => _replays;

    /// <summary>The datagram for <paramref name="message"/>, stamped with our clock now.</summary>
    public byte[] Seal(ReadOnlySpan<byte> message) => Seal(message, _time.GetUtcNow().ToUnixTimeMilliseconds());

    /// <summary>As <see cref="Seal(ReadOnlySpan{byte})"/> with a given timestamp (tests make old and future datagrams with it).</summary>
    public byte[] Seal(ReadOnlySpan<byte> message, long unixMilliseconds)
    {
        var datagram = new byte[message.Length + DhtLimits.AuthenticatorLength];
        message.CopyTo(datagram);
        BinaryPrimitives.WriteInt64BigEndian(datagram.AsSpan(message.Length, DhtLimits.TimestampLength), unixMilliseconds);
        int signed = message.Length + DhtLimits.TimestampLength;
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(_key, datagram.AsSpan(0, signed), mac);
        mac[..DhtLimits.MacLength].CopyTo(datagram.AsSpan(signed));
        return datagram;
    }

    /// <summary>
    /// Checks a received datagram before anything in it is parsed: MAC first (so nothing unauthenticated is trusted or
    /// remembered), then the timestamp window, then replay. On <see cref="AuthResult.Ok"/>, <paramref name="message"/>
    /// is the datagram without its authenticator.
    /// </summary>
    public AuthResult Open(ReadOnlyMemory<byte> datagram, out ReadOnlyMemory<byte> message)
    {
        message = default;
        if (datagram.Length < DhtLimits.AuthenticatorLength) return AuthResult.BadMac;
        var span = datagram.Span;
        int signed = datagram.Length - DhtLimits.MacLength;
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(_key, span[..signed], mac);
        var received = span[signed..];
        if (!CryptographicOperations.FixedTimeEquals(mac[..DhtLimits.MacLength], received)) return AuthResult.BadMac;

        long stamped = BinaryPrimitives.ReadInt64BigEndian(span.Slice(signed - DhtLimits.TimestampLength, DhtLimits.TimestampLength));
        long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var verdict = _replays.Check(BinaryPrimitives.ReadUInt128LittleEndian(received), stamped, now);
        if (verdict == ReplayVerdict.OutsideWindow) return AuthResult.OutsideWindow;
        if (verdict == ReplayVerdict.Replayed) return AuthResult.Replayed;
        message = datagram[..(signed - DhtLimits.TimestampLength)];
        return AuthResult.Ok;
    }
}
