using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>
/// The node's output socket, <c>&lt;data dir&gt;/output.sock</c> (mode 0600, beside the control socket): a <c>swarm get</c>
/// hands the node the output file it opened itself (one byte, version 1, with the open file as SCM_RIGHTS) and gets back
/// a token, which its task request names (<see cref="TaskRequest.OutputToken"/>); the node writes into that file and never
/// opens the path, so the file lands where the caller sees it and belongs to the caller. Whatever a client sends is hostile
/// until checked: a bounded wait for one short message, exactly one open file, checked by <see cref="HandedOutput.Adopt"/>;
/// at most <see cref="MaxPending"/> files that no task claimed yet, each closed after <see cref="Lifetime"/>; at most
/// <see cref="MaxClients"/> clients at once (the rest wait their turn in the listen backlog). The answer is one line: <c>ok TOKEN</c> or <c>error MESSAGE</c>.
/// </summary>
public sealed class HandedOutputs : IHostedService, IDisposable
{
    public const string FileName = "output.sock";
    public const byte Version = 1;
    public const int MaxPending = 32;
    public const int MaxClients = 4;
    /// <summary>A client names its file in the task request right after handing it over; a minute is plenty.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan ReceiveTimeout = TimeSpan.FromSeconds(2);
    internal const int TokenBytes = 16, MaxAnswer = 1024;

    private readonly string _path;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, (HandedOutput Output, DateTimeOffset Expires)> _pending = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _clients = new(MaxClients, MaxClients);
    private readonly CancellationTokenSource _stop = new();
    private Socket? _listener;
    private Task? _accepting;
    private ITimer? _sweeper;
    private int _disposed;

    public HandedOutputs(string socketPath, ILogger logger, TimeProvider time)
    {
        _path = socketPath;
        _logger = logger;
        _time = time;
    }

    public static string SocketPath(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    /// <summary>Outputs handed over and not claimed yet.</summary>
    public int Pending
    {
        get
        {
            lock (_lock) return _pending.Count;
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        Listen();
        return Task.CompletedTask;
    }

    /// <summary>Binds the socket (0600 before it accepts anyone) and starts accepting. Linux only: elsewhere there is none.</summary>
    public void Listen()
    {
        if (!OperatingSystem.IsLinux()) return;
        // The control socket's start-up check already found no live node in this data directory: a file here is stale.
        if (File.Exists(_path)) File.Delete(_path);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(_path));
            File.SetUnixFileMode(_path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(128);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        _listener = listener;
        _accepting = Task.Run(AcceptAsync);
        // Expired files are also closed on every hand-over and claim; the timer closes them when no client comes at all.
        _sweeper = _time.CreateTimer(_ => Sweep(), null, Lifetime / 4, Lifetime / 4);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        if (_accepting != null) await _accepting.WaitAsync(cancellationToken).ConfigureAwait(false);
        Dispose();
    }

    private async Task AcceptAsync()
    {
        var listener = _listener!;
        while (!_stop.IsCancellationRequested)
        {
            // A slot first, then the next client: more clients than slots wait in the listen backlog (each served within
            // its 2 s), so a burst of gets is served in turn and none is turned away.
            try
            {
                await _clients.WaitAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException e)
            {
                _clients.Release();
                // Out of descriptors, most likely: the clients being served will free some.
                _logger.LogWarning("output socket {Path}: accepting a client failed ({Error})", _path, e.SocketErrorCode);
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(100), _stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            _ = Task.Run(() =>
            {
                try
                {
                    Serve(client);
                }
                catch (Exception e)
                {
                    _logger.LogWarning("output socket {Path}: serving a client failed unexpectedly: {Error}", _path, e.Message);
                }
                finally
                {
                    client.Dispose();
                    _clients.Release();
                }
            });
        }
    }

    private void Serve(Socket client)
    {
        string answer;
        var files = new List<SafeFileHandle>();
        try
        {
            if (!client.Poll(ReceiveTimeout, SelectMode.SelectRead)) return; // said nothing in time
            Span<byte> data = stackalloc byte[16];
            int n = UnixRights.Receive(client, data, files, out bool truncated);
            if (n < 0) return;
            answer = Admit(data[..n], files, truncated);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            return;
        }
        finally
        {
            foreach (var f in files) f.Dispose(); // what was not adopted; closed before the answer, so the client can rely on it
        }
        try
        {
            client.SendTimeout = (int)ReceiveTimeout.TotalMilliseconds;
            client.Send(Encoding.UTF8.GetBytes(answer + "\n"));
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    }

    /// <summary>Takes the one file of a well-formed hand-over into the table; the answer line. Removes what it takes from <paramref name="files"/>.</summary>
    private string Admit(ReadOnlySpan<byte> data, List<SafeFileHandle> files, bool truncated)
    {
        if (data.Length != 1 || data[0] != Version)
            return $"error this is not a hand-over the node understands: it expects one byte, version {Version}, with one open file";
        if (truncated || files.Count != 1)
            return $"error hand over exactly one open file (this came with {(truncated ? "too many" : files.Count.ToString(System.Globalization.CultureInfo.InvariantCulture))})";
        HandedOutput output;
        try
        {
            output = HandedOutput.Adopt(files[0]);
        }
        catch (OutputTargetException e)
        {
            return "error " + e.Message;
        }
        finally
        {
            files.Clear(); // adopted, or closed by Adopt
        }
        string token = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(TokenBytes));
        lock (_lock)
        {
            SweepLocked();
            if (Volatile.Read(ref _disposed) != 0)
            {
                output.Dispose();
                return "error the node is stopping; run the get again once it runs";
            }
            if (_pending.Count >= MaxPending)
            {
                output.Dispose();
                return $"error the node holds {MaxPending} output files that no task has claimed yet; try again in a minute";
            }
            _pending[token] = (output, _time.GetUtcNow() + Lifetime);
        }
        return "ok " + token;
    }

    /// <summary>The file handed over with <paramref name="token"/>, once: null when there is none (never handed over, expired, or claimed).</summary>
    public HandedOutput? Claim(string? token)
    {
        if (token is not { Length: TokenBytes * 2 }) return null;
        lock (_lock)
        {
            SweepLocked();
            return _pending.Remove(token, out var entry) ? entry.Output : null;
        }
    }

    /// <summary>Closes the files whose time ran out.</summary>
    public void Sweep()
    {
        lock (_lock) SweepLocked();
    }

    private void SweepLocked()
    {
        if (_pending.Count == 0) return;
        var now = _time.GetUtcNow();
        foreach (var (token, entry) in _pending.Where(p => p.Value.Expires <= now).ToList())
        {
            _pending.Remove(token);
            entry.Output.Dispose();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _stop.Cancel();
        _sweeper?.Dispose();
        _listener?.Dispose();
        if (_listener != null)
        {
            try { File.Delete(_path); } catch (IOException) { }
        }
        lock (_lock)
        {
            foreach (var entry in _pending.Values) entry.Output.Dispose();
            _pending.Clear();
        }
    }
}
