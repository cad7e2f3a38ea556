using System.Net;
using System.Net.Sockets;

namespace Swarm.Core.Exchange;

/// <summary>
/// Inbound connections that have not finished admission and the handshake: a small pool of its own, apart from the
/// peer limit, with a cap per source address. When the pool (or the address's share) is full, the oldest connection
/// that has not even sent its preamble — and has no bytes waiting — is closed to make room: silent connections cannot
/// keep a real peer out, and a peer that sent its preamble is never pushed out by newer silent ones.
/// </summary>
internal sealed class HandshakePool(int maxPending, int maxPerAddress, bool loopbackExempt)
{
    internal sealed class Entry(Socket socket, IPAddress address) : IDisposable
    {
        public readonly Socket Socket = socket;
        public readonly IPAddress Address = address;
        public readonly long Since = Environment.TickCount64;
        public readonly CancellationTokenSource Evicted = new();
        /// <summary>Sent its preamble: from now on only its deadline ends it.</summary>
        public volatile bool Spoke;

        public void Dispose() => Evicted.Dispose();
    }

    private readonly LinkedList<Entry> _entries = [];
    private readonly Dictionary<IPAddress, int> _perAddress = [];
    private readonly Lock _lock = new();

    public int Count { get { lock (_lock) return _entries.Count; } }

    /// <summary>
    /// Admits a new connection to the pool, making room when it can; null when it cannot (the caller refuses it). A
    /// connection closed to make room learns it from <see cref="Entry.Evicted"/> (its handler counts the refusal).
    /// </summary>
    public Entry? TryEnter(Socket socket)
    {
        var address = Normalize(((IPEndPoint)socket.RemoteEndPoint!).Address);
        bool perAddress = !(loopbackExempt && IPAddress.IsLoopback(address));
        List<Entry> victims = [];
        Entry entry;
        lock (_lock)
        {
            if (perAddress && _perAddress.GetValueOrDefault(address) >= maxPerAddress)
            {
                var victim = OldestSilent(address);
                if (victim == null) return null;
                Remove(victim);
                victims.Add(victim);
            }
            if (_entries.Count >= maxPending)
            {
                var victim = OldestSilent(null);
                if (victim == null)
                {
                    foreach (var v in victims) Restore(v); // made no room after all: nothing is closed
                    return null;
                }
                Remove(victim);
                victims.Add(victim);
            }
            entry = new Entry(socket, address);
            _entries.AddLast(entry);
            _perAddress[address] = _perAddress.GetValueOrDefault(address) + 1;
        }
        foreach (var v in victims)
        {
            try { v.Evicted.Cancel(); } catch (ObjectDisposedException) { }
        }
        return entry;
    }

    public void Leave(Entry entry)
    {
        lock (_lock) Remove(entry);
        entry.Dispose();
    }

    /// <summary>Under the lock: the oldest entry (of <paramref name="address"/>, or any) that has said nothing and has nothing waiting.</summary>
    private Entry? OldestSilent(IPAddress? address)
    {
        for (var node = _entries.First; node != null; node = node.Next)
        {
            var e = node.Value;
            if (e.Spoke || (address != null && !e.Address.Equals(address))) continue;
            int waiting;
            try { waiting = e.Socket.Available; } catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { waiting = 0; }
            if (waiting == 0) return e;
        }
        return null;
    }

    private void Remove(Entry entry)
    {
        if (!_entries.Remove(entry)) return;
        int n = _perAddress.GetValueOrDefault(entry.Address) - 1;
        if (n <= 0) _perAddress.Remove(entry.Address);
        else _perAddress[entry.Address] = n;
    }

    private void Restore(Entry entry)
    {
        _entries.AddFirst(entry);
        _perAddress[entry.Address] = _perAddress.GetValueOrDefault(entry.Address) + 1;
    }

    internal static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
}
