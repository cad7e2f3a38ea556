using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Swarm.Node;

public static class EndPoints
{
    /// <summary>Parses <c>IP:PORT</c>, <c>[IPv6]:PORT</c> or <c>host:PORT</c> (resolved now). Port 0 means "pick a free one" when listening.</summary>
    /// <summary>Splits <c>HOST:PORT</c> or <c>[IPv6]:PORT</c> into host (brackets removed) and port, checking the form only.</summary>
    public static (string Host, int Port) Split(string text)
    {
        string s = text.Trim();
        int colon = s.LastIndexOf(':');
        bool bracketed = s.StartsWith('[');
        if (colon <= 0 || (bracketed && s[colon - 1] != ']') || (!bracketed && s.IndexOf(':') != colon))
            throw new FormatException($"'{text}' is not an address: write IP:PORT, for example 127.0.0.1:7400");
        string host = s[..colon].Trim('[', ']');
        if (!int.TryParse(s[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port > 65535)
            throw new FormatException($"'{text}' has no valid port: write IP:PORT, for example 127.0.0.1:7400");
        return (host, port);
    }

    public static IPEndPoint Parse(string text)
    {
        var (host, port) = Split(text);
        if (IPAddress.TryParse(host, out var ip)) return new IPEndPoint(ip, port);
        try
        {
            var addresses = Dns.GetHostAddresses(host);
            var address = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.First();
            return new IPEndPoint(address, port);
        }
        catch (Exception e) when (e is SocketException or InvalidOperationException or ArgumentException)
        {
            throw new FormatException($"'{host}' in '{text}' does not resolve: write IP:PORT, for example 127.0.0.1:7400", e);
        }
    }
}
