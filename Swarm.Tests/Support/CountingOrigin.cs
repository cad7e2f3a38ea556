using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Swarm.Tests.Support;

/// <summary>
/// A small HTTP/1.1 origin on 127.0.0.1 for tests: serves files by path (GET, Content-Length, one request per connection),
/// counts the body bytes it sends, and can be told to fail the next requests with a status code.
/// </summary>
public sealed class CountingOrigin : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Dictionary<string, byte[]> _files = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _bytesSent;
    private int _requests;
    private int _heads;
    private int _failNext;
    private int _failStatus = 500;
    private long _cutAfter = -1;

    private readonly System.Collections.Concurrent.ConcurrentQueue<string?> _authorizations = new();

    /// <summary>When set, requests whose Authorization header is not exactly this get 401 (a private origin).</summary>
    public string? RequiredAuthorization { get; set; }

    /// <summary>The Authorization header of every request, in order (null: none sent).</summary>
    public IReadOnlyList<string?> Authorizations => [.. _authorizations];

    private readonly System.Collections.Concurrent.ConcurrentQueue<string?> _userAgents = new();

    /// <summary>The User-Agent header of every request, in order (null: none sent).</summary>
    public IReadOnlyList<string?> UserAgents => [.. _userAgents];

    /// <summary>A pause after every 64 KiB of body, to make an origin slow.</summary>
    public TimeSpan ChunkDelay { get; set; }

    private int _rangeRequests;
    /// <summary>GETs answered with 206 (a range honoured).</summary>
    public int RangeRequests => Volatile.Read(ref _rangeRequests);

    /// <summary>Whether the origin honours <c>Range: bytes=N-</c> (answers 206 and says Accept-Ranges: bytes).</summary>
    public bool SupportsRanges { get; set; }

    /// <summary>The next response is cut (connection closed) after this many body bytes.</summary>
    public void CutNextAfter(long bytes) => Interlocked.Exchange(ref _cutAfter, bytes);

    /// <summary>Listens on 127.0.0.1:<paramref name="port"/> (0: any free port).</summary>
    public CountingOrigin(int port = 0)
    {
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start();
        _loop = Task.Run(AcceptLoopAsync);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public long BytesSent => Interlocked.Read(ref _bytesSent);
    /// <summary>GET requests (HEAD requests, the pointer checks, are counted in <see cref="HeadRequests"/>).</summary>
    public int Requests => Volatile.Read(ref _requests);
    public int HeadRequests => Volatile.Read(ref _heads);
    public string Url(string path) => $"http://127.0.0.1:{Port}{path}";

    public void Serve(string path, byte[] content) { lock (_files) _files[path] = content; }

    /// <summary>The next <paramref name="count"/> requests get <paramref name="status"/> instead of the file.</summary>
    public void FailNext(int count, int status = 500)
    {
        _failStatus = status;
        Volatile.Write(ref _failNext, count);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => HandleAsync(client));
        }
    }

    private async Task HandleAsync(TcpClient client)
    {
        using var _ = client;
        try
        {
            var stream = client.GetStream();
            var head = new StringBuilder();
            var one = new byte[1];
            while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal) && head.Length < 16384)
            {
                if (await stream.ReadAsync(one, _stop.Token) == 0) return;
                head.Append((char)one[0]);
            }
            string? authorization = head.ToString().Split("\r\n").FirstOrDefault(l => l.StartsWith("Authorization:", StringComparison.OrdinalIgnoreCase))?["Authorization:".Length..].Trim();
            _authorizations.Enqueue(authorization);
            _userAgents.Enqueue(head.ToString().Split("\r\n").FirstOrDefault(l => l.StartsWith("User-Agent:", StringComparison.OrdinalIgnoreCase))?["User-Agent:".Length..].Trim());
            if (RequiredAuthorization != null && authorization != RequiredAuthorization)
            {
                await stream.WriteAsync("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), _stop.Token);
                return;
            }
            string[] requestLine = head.ToString().Split("\r\n")[0].Split(' ');
            Interlocked.Increment(ref requestLine[0] == "HEAD" ? ref _heads : ref _requests);
            string path = requestLine.Length > 1 ? requestLine[1].Split('?')[0] : "/";
            if (Interlocked.Decrement(ref _failNext) >= 0)
            {
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {_failStatus} Failing\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), _stop.Token);
                return;
            }
            byte[]? body;
            lock (_files) _files.TryGetValue(path, out body);
            if (body == null)
            {
                await stream.WriteAsync("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), _stop.Token);
                return;
            }
            int from = 0;
            var rangeLine = head.ToString().Split("\r\n").FirstOrDefault(l => l.StartsWith("Range: bytes=", StringComparison.OrdinalIgnoreCase));
            if (SupportsRanges && rangeLine != null) from = int.Parse(rangeLine["Range: bytes=".Length..].TrimEnd('-').Split('-')[0], System.Globalization.CultureInfo.InvariantCulture);
            // A strong validator, as real origins give (ETag from the content).
            string etag = "\"" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(body).AsSpan(0, 8)) + "\"";
            // If-Range (RFC 9110 13.1.5): the range only if the validator is this version's; else the whole body.
            var ifRange = head.ToString().Split("\r\n").FirstOrDefault(l => l.StartsWith("If-Range:", StringComparison.OrdinalIgnoreCase));
            if (ifRange != null && ifRange["If-Range:".Length..].Trim() != etag) from = 0;
            if (from > 0) Interlocked.Increment(ref _rangeRequests);
            string status = from > 0 ? "206 Partial Content" : "200 OK";
            string extra = $"ETag: {etag}\r\n" + (SupportsRanges ? "Accept-Ranges: bytes\r\n" : "") + (from > 0 ? $"Content-Range: bytes {from}-{body.Length - 1}/{body.Length}\r\n" : "");
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {status}\r\nContent-Length: {body.Length - from}\r\n{extra}Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"), _stop.Token);
            if (requestLine[0] == "HEAD") return;
            long cut = Interlocked.Exchange(ref _cutAfter, -1);
            long sent = 0;
            for (int at = from; at < body.Length; at += 65536)
            {
                int n = Math.Min(65536, body.Length - at);
                if (cut >= 0 && sent + n > cut) n = (int)(cut - sent);
                await stream.WriteAsync(body.AsMemory(at, n), _stop.Token);
                Interlocked.Add(ref _bytesSent, n);
                sent += n;
                if (ChunkDelay > TimeSpan.Zero) await Task.Delay(ChunkDelay, _stop.Token);
                if (cut >= 0 && sent >= cut) return; // close mid-body, as a dying origin would
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException) { }
    }

    private int _disposed;

    /// <summary>Stops listening (an origin that is down: connections are refused). Safe to call more than once.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stop.CancelAsync();
        _listener.Stop();
        try { await _loop; } catch (Exception) { }
        _stop.Dispose();
    }
}
