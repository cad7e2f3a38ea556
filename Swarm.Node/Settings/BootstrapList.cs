using System.Collections;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Swarm.Node;

/// <summary>
/// The DHT nodes to join through, as configured: addresses, or host names that are resolved each time the node joins
/// (every address a name has, so a Kubernetes headless Service names all its pods). A name that does not resolve yet
/// (the first pod of a DaemonSet, a DNS record still on its way) is left out of that join, not an error: the node starts
/// and joins again later. Enumerating gives the addresses of now.
/// </summary>
[CollectionBuilder(typeof(BootstrapList), nameof(Create))]
public sealed class BootstrapList : IEnumerable<IPEndPoint>
{
    private readonly (string? Host, IPEndPoint? Address, int Port)[] _entries;
    private readonly Func<string, IPAddress[]> _resolve;

    private BootstrapList((string?, IPEndPoint?, int)[] entries, Func<string, IPAddress[]>? resolve = null)
    {
        _entries = entries;
        _resolve = resolve ?? Dns.GetHostAddresses;
    }

    public static BootstrapList Empty { get; } = new([]);

    /// <summary>Addresses only (tests, and where the caller already has them).</summary>
    public static BootstrapList Create(ReadOnlySpan<IPEndPoint> addresses) => new([.. addresses.ToArray().Select(a => ((string?)null, (IPEndPoint?)a, a.Port))]);

    public static implicit operator BootstrapList(IPEndPoint[] addresses) => Create(addresses);

    /// <summary>
    /// Parses entries of <c>IP:PORT</c>, <c>[IPv6]:PORT</c> or <c>host:PORT</c>; host names are checked for form only (not
    /// looked up). <paramref name="resolve"/> replaces the system resolver (tests).
    /// </summary>
    public static BootstrapList Parse(IEnumerable<string> texts, Func<string, IPAddress[]>? resolve = null)
    {
        var entries = new List<(string?, IPEndPoint?, int)>();
        foreach (string text in texts)
        {
            var (host, port) = EndPoints.Split(text);
            if (IPAddress.TryParse(host, out var ip)) entries.Add((null, new IPEndPoint(ip, port), port));
            else if (Uri.CheckHostName(host) == UriHostNameType.Dns) entries.Add((host, null, port));
            else throw new FormatException($"'{text}' is not an address or a host name: write IP:PORT or HOST:PORT, for example 127.0.0.1:7400");
        }
        return new([.. entries], resolve);
    }

    /// <summary>How many entries were configured (a name counts once, however many addresses it has).</summary>
    public int Count => _entries.Length;

    /// <summary>Host names among the entries that did not resolve at the last <see cref="Resolve"/>.</summary>
    public IReadOnlyList<string> Unresolved { get; private set; } = [];

    /// <summary>The addresses of now: literal ones as given, every IPv4 and IPv6 address of each name.</summary>
    public IReadOnlyList<IPEndPoint> Resolve()
    {
        var result = new List<IPEndPoint>();
        var unresolved = new List<string>();
        foreach (var (host, address, port) in _entries)
        {
            if (address != null)
            {
                result.Add(address);
                continue;
            }
            try
            {
                var found = _resolve(host!).Where(a => a.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6).ToArray();
                if (found.Length == 0) unresolved.Add(host!);
                foreach (var a in found.Take(64)) result.Add(new IPEndPoint(a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a, port));
            }
            catch (Exception e) when (e is SocketException or ArgumentException)
            {
                unresolved.Add(host!);
            }
        }
        Unresolved = unresolved;
        return [.. result.Distinct()];
    }

    public IEnumerator<IPEndPoint> GetEnumerator() => Resolve().GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>The entries as configured: "10.0.0.1:7400, swarm-peers.kube-system.svc:7400".</summary>
    public override string ToString() => string.Join(", ", _entries.Select(e =>
        e.Address?.ToString() ?? (e.Host + ":" + e.Port.ToString(CultureInfo.InvariantCulture))));
}
