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
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Dictionary<string, byte[]> _files = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _bytesSent;
    private int _requests;
    private int _failNext;
    private int _failStatus = 500;

    public CountingOrigin()
    {
        _listener.Start();
        _loop = Task.Run(AcceptLoopAsync);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public long BytesSent => Interlocked.Read(ref _bytesSent);
    public int Requests => Volatile.Read(ref _requests);
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
            Interlocked.Increment(ref _requests);
            string[] requestLine = head.ToString().Split("\r\n")[0].Split(' ');
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
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"), _stop.Token);
            for (int at = 0; at < body.Length; at += 65536)
            {
                int n = Math.Min(65536, body.Length - at);
                await stream.WriteAsync(body.AsMemory(at, n), _stop.Token);
                Interlocked.Add(ref _bytesSent, n);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try { await _loop; } catch (Exception) { }
        _stop.Dispose();
    }
}
