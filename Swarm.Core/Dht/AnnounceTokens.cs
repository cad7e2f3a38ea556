using System.Net;
using System.Security.Cryptography;

namespace Swarm.Core.Dht;

/// <summary>
/// Write tokens as in BEP 5: token = HMAC-SHA256(secret, requester IP) truncated to 16 bytes. The secret rotates every
/// <see cref="DhtOptions.TokenRotation"/> and the previous one is still accepted, so a token from GetProviders/Get stays valid
/// for one to two periods. Only the holder of an IP receives tokens for it, so nobody can announce for an address it does not hold.
/// </summary>
internal sealed class AnnounceTokens
{
    private readonly Lock _lock = new();
    private readonly TimeSpan _rotation;
    private readonly TimeProvider _time;
    private byte[] _current = RandomNumberGenerator.GetBytes(32);
    private byte[] _previous = RandomNumberGenerator.GetBytes(32);
    private DateTimeOffset _rotatedAt;

    public AnnounceTokens(TimeSpan rotation, TimeProvider time)
    {
        _rotation = rotation;
        _time = time;
        _rotatedAt = time.GetUtcNow();
    }

    public byte[] Issue(IPAddress requester)
    {
        var token = new byte[DhtLimits.TokenLength];
        Compute(Secrets().Current, requester, token);
        return token;
    }

    public bool Validate(IPAddress requester, ReadOnlySpan<byte> token)
    {
        if (token.Length != DhtLimits.TokenLength) return false;
        var (current, previous) = Secrets();
        Span<byte> expected = stackalloc byte[DhtLimits.TokenLength];
        Compute(current, requester, expected);
        if (CryptographicOperations.FixedTimeEquals(expected, token)) return true;
        Compute(previous, requester, expected);
        return CryptographicOperations.FixedTimeEquals(expected, token);
    }

    private (byte[] Current, byte[] Previous) Secrets()
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            long periods = (now - _rotatedAt).Ticks / _rotation.Ticks;
            if (periods > 0)
            {
                // Rotation follows a fixed schedule even when no request came for a while; after two periods both secrets are stale.
                _previous = periods >= 2 ? RandomNumberGenerator.GetBytes(32) : _current;
                _current = RandomNumberGenerator.GetBytes(32);
                _rotatedAt += TimeSpan.FromTicks(periods * _rotation.Ticks);
            }
            return (_current, _previous);
        }
    }

    private static void Compute(byte[] secret, IPAddress requester, Span<byte> token)
    {
        Span<byte> address = stackalloc byte[16];
        DhtAddress.Normalize(requester).TryWriteBytes(address, out int written);
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(secret, address[..written], mac);
        mac[..token.Length].CopyTo(token);
    }
}
