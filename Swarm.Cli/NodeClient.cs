using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Swarm.Node;

namespace Swarm.Cli;

/// <summary>
/// Talks to a running <c>swarm node</c> through the control socket in its data directory (HTTP over a Unix socket).
/// </summary>
internal sealed class NodeClient : IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private readonly HttpClient _http;

    private NodeClient(string socketPath)
    {
        SocketPath = socketPath;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        _http = new HttpClient(handler) { BaseAddress = new Uri("http://swarm-node/"), Timeout = TimeSpan.FromSeconds(30) };
    }

    public string SocketPath { get; }

    /// <summary>A client for the node running with this data directory, or null when none answers there.</summary>
    public static async Task<NodeClient?> TryConnectAsync(string dataDirectory, CancellationToken cancellationToken)
    {
        string path = NodeConfig.SocketPath(dataDirectory);
        if (!File.Exists(path)) return null;
        var client = new NodeClient(path);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            using var response = await client._http.GetAsync("healthz", timeout.Token).ConfigureAwait(false);
            return client;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            client.Dispose();
            return null; // a socket file left by a node that died
        }
    }

    /// <summary>
    /// Hands the node an output file this process opened (<see cref="HandedOutputs"/>, beside the control socket) and returns
    /// the token a task request names it by.
    /// </summary>
    public async Task<string> HandOverAsync(Microsoft.Win32.SafeHandles.SafeFileHandle file, CancellationToken cancellationToken)
    {
        string path = HandedOutputs.SocketPath(Path.GetDirectoryName(SocketPath)!);
        if (!File.Exists(path))
            throw new IOException($"the node running on {SocketPath} takes no output files from other processes (it has no {path}: an older version?); restart it with this version of swarm");
        return await Task.Run(() => OutputHandOver.HandOver(path, file, TimeSpan.FromSeconds(10)), cancellationToken).ConfigureAwait(false);
    }

    public async Task<T> GetAsync<T>(string path, CancellationToken cancellationToken)
    {
        using var response = await _http.GetAsync(path, cancellationToken).ConfigureAwait(false);
        return await ReadAsync<T>(response, cancellationToken).ConfigureAwait(false);
    }

    public async Task<T> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body == null ? null : JsonContent.Create(body, options: Json) };
        using var response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
        return await ReadAsync<T>(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends a request whose answer has no body; false on 404.</summary>
    public async Task<bool> SendAsync(HttpMethod method, string path, CancellationToken cancellationToken)
    {
        using var response = await _http.SendAsync(new HttpRequestMessage(method, path), cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == System.Net.HttpStatusCode.NotFound) return false;
        if (!response.IsSuccessStatusCode) throw new UsageException(await ErrorOfAsync(response, cancellationToken).ConfigureAwait(false));
        return true;
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (!response.IsSuccessStatusCode)
        {
            string error = await ErrorOfAsync(response, cancellationToken).ConfigureAwait(false);
            throw (int)response.StatusCode is >= 400 and < 500 ? new UsageException(error) : new IOException($"the node failed: {error}");
        }
        return (await response.Content.ReadFromJsonAsync<T>(Json, cancellationToken).ConfigureAwait(false))!;
    }

    private static async Task<string> ErrorOfAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        string text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.TryGetProperty("error", out var e)) return e.GetString() ?? text;
        }
        catch (JsonException) { }
        return $"{(int)response.StatusCode} {response.ReasonPhrase}: {text}";
    }

    public static JsonSerializerOptions JsonOptions => Json;

    public void Dispose() => _http.Dispose();
}
