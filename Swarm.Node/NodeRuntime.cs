using Swarm.Core;
using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Core.Sources;
using Swarm.Core.Storage;

namespace Swarm.Node;

/// <summary>What a client asks the node to do: fetch (<c>get</c>) or ingest and serve (<c>seed</c>) a source.</summary>
public sealed record TaskRequest
{
    public string Kind { get; init; } = "get";
    /// <summary>swarm://id, an http(s) URL, or (seed) a file path on the node's host.</summary>
    public required string Source { get; init; }
    /// <summary>
    /// Where the verified file goes (absolute path); none: keep it in the store only. Without <see cref="OutputToken"/> the node
    /// writes this path itself, as the node's user and in the node's view of the file system; with one, the path is the
    /// client's and only shown.
    /// </summary>
    public string? Output { get; init; }
    /// <summary>
    /// The output file the client opened itself and handed over on the output socket (<see cref="HandedOutputs"/>): the token it
    /// got back. The node writes the verified bytes into that file; the client gives it its name.
    /// </summary>
    public string? OutputToken { get; init; }
    public string? Tag { get; init; }
    public string[] Filters { get; init; } = [];
    public string[] Headers { get; init; } = [];
    public string? Digest { get; init; }
    public bool NoBackToSource { get; init; }
    public string[] Peers { get; init; } = [];
    /// <summary>For <c>seed oci://…</c>: only this platform of an index (os/arch[/variant]).</summary>
    public string? Platform { get; init; }

    /// <summary>
    /// The request as it may be shown (<c>ls</c>, <c>status</c>, the control API): the source through
    /// <see cref="TaskKey.Redact(string, IReadOnlyCollection{string})"/>, headers as <c>Name: REDACTED</c>.
    /// </summary>
    public TaskRequest Redacted(SecretRedactor redactor) => this with { Source = redactor.Source, Headers = [.. redactor.Headers], OutputToken = null };
}

/// <summary>A task as the control API reports it.</summary>
public sealed record TaskInfo
{
    public required string Id { get; init; }
    public required TaskRequest Request { get; init; }
    public string State { get; init; } = "running";
    public string? Error { get; init; }
    /// <summary>usage, unavailable, local or digest: what the CLI turns into its exit code.</summary>
    public string? ErrorKind { get; init; }
    public string? ContentId { get; init; }
    /// <summary>What the task produced when that is not a content id (seed oci://: the image's manifest digest).</summary>
    public string? Result { get; init; }
    public long Total { get; init; }
    public long Verified { get; init; }
    public int Peers { get; init; }
    public long FromPeers { get; init; }
    public long FromOrigin { get; init; }
    public DateTimeOffset Started { get; init; }
    public DateTimeOffset? Finished { get; init; }
}

/// <summary>
/// The long-running node: the <see cref="LocalNode"/> (exchange + DHT), the tasks clients start through the control
/// API, persisted so a restarted node resumes them from its store, and the counters behind /metrics.
/// Runs as a hosted service: stopped by SIGTERM, it cancels its tasks (verified pieces are journalled), saves the task
/// list and the routing table, and closes its connections.
/// </summary>
public sealed class NodeRuntime : IHostedService, IAsyncDisposable
{
    private const string TasksFile = "tasks.json";
    private readonly ConcurrentDictionary<string, TaskState> _tasks = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly SharedFetches<TaskState, UrlFetchResult> _fetches;
    private readonly ILogger _logger;
    private LocalNode? _node;
    private long _fromOrigin;

    private sealed class TaskState(string id, TaskRequest request) : IDisposable
    {
        public void Dispose()
        {
            Cancel.Dispose();
            Output?.Dispose();
        }

        public readonly string Id = id;
        /// <summary>The real request (headers, signed URL): in memory and in the 0600 task list only, because a resumed task needs it.</summary>
        public readonly TaskRequest Request = request;
        /// <summary>Everything shown about the task (API, logs, error texts) goes through this.</summary>
        public readonly SecretRedactor Redactor = new(request.Source, request.Filters, request.Headers);
        public readonly DateTimeOffset Started = DateTimeOffset.UtcNow;
        public readonly CancellationTokenSource Cancel = new();
        /// <summary>The file the client handed over for its output (<see cref="TaskRequest.OutputToken"/>); closed when the task ends.</summary>
        public HandedOutput? Output;
        public volatile string State = "running";
        public string? Error;
        public string? ErrorKind;
        public ContentId? Content;
        public string? Result;
        public long Total, Verified, FromPeers, FromOrigin;
        public int Peers;
        public DateTimeOffset? Finished;
        public Task? Run;

        public TaskInfo Info() => new()
        {
            Id = Id, Request = Request.Redacted(Redactor), State = State, Error = Error, ErrorKind = ErrorKind, ContentId = Content?.ToUri(), Result = Result,
            Total = Interlocked.Read(ref Total), Verified = Interlocked.Read(ref Verified), Peers = Peers,
            FromPeers = FromPeers, FromOrigin = FromOrigin, Started = Started, Finished = Finished,
        };
    }

    public NodeRuntime(NodeConfig config, ILogger<NodeRuntime> logger)
    {
        Config = config;
        _logger = logger;
        _fetches = new(_stop.Token);
    }

    public NodeConfig Config { get; }
    public LocalNode Node => _node ?? throw new InvalidOperationException("the node is not started");
    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;
    /// <summary>Bytes this node read from origins (ingests), since start.</summary>
    public long BytesFromOrigin => Interlocked.Read(ref _fromOrigin);
    /// <summary>Content ids that tasks are using now: never evicted.</summary>
    public IReadOnlySet<ContentId> InUse => _tasks.Values.Where(t => t.State == "running" && t.Content != null).Select(t => t.Content!.Value).ToHashSet();
    public event Action<ContentId>? ContentUsed;
    /// <summary>The OCI registry mirror (null when it is off).</summary>
    public Mirror.RegistryMirror? Mirror { get; private set; }
    private Mirror.OciContent? _oci;
    private Mirror.Registries? _registries;

    /// <summary>Content id → OCI digest, for what the mirror and preheats hold.</summary>
    public IReadOnlyDictionary<ContentId, string> OciDigests => _oci?.Digests ?? new Dictionary<ContentId, string>();

    /// <summary>Counts bytes read from an origin outside a task (the registry mirror's ingests).</summary>
    public void AddOriginBytes(long bytes) => Interlocked.Add(ref _fromOrigin, bytes);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        PrepareDataDirectory();
        _registries = Swarm.Node.Mirror.Registries.Load(Config.RegistryConfig); // a bad file stops the start before anything listens
        _node = await LocalNode.StartAsync(Config.DataDirectory, Config.EngineOptions(), _logger, Config.Listen, Config.Bootstrap, cancellationToken).ConfigureAwait(false);
        int served = 0;
        foreach (var id in _node.Store.List())
        {
            StoredContent? content;
            try
            {
                content = _node.Store.TryOpen(id);
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                _logger.LogWarning("store entry {Id} is damaged and is not served: {Error}", id, e.Message);
                continue;
            }
            if (content is not { IsComplete: true })
            {
                content?.Dispose();
                continue;
            }
            await _node.ServeAsync(content, cancellationToken).ConfigureAwait(false);
            served++;
        }
        _node.Engine.PieceRotten += OnPieceRotten;
        _oci = new Mirror.OciContent(_node, Path.Combine(Config.DataDirectory, "mirror"), _logger, AddOriginBytes);
        if (Config.Mirror != null) Mirror = new Mirror.RegistryMirror(_node, _oci, _registries, Config.Upstream, _logger);
        int resumed = 0, dropped = 0;
        foreach (var (id, request) in LoadTasks())
        {
            try
            {
                Start(request, id: id);
                resumed++;
            }
            catch (Exception e) when (e is ArgumentException or FormatException or IOException)
            {
                // Its output became something swarm must not write, or its file went away: reported once and dropped (the
                // task list is saved without it), and the node starts and resumes the others.
                _logger.LogWarning("task {Task} saved in {Path} cannot run any more and is dropped: {Error}", id, Path.Combine(Config.DataDirectory, TasksFile),
                    new SecretRedactor(request.Source, request.Filters, request.Headers).Scrub(e.Message));
                dropped++;
            }
        }
        if (dropped > 0) SaveTasks();
        var stats = _node.Dht!.GetStats();
        _logger.LogInformation("node {NodeId} listening on {EndPoint} (TCP and UDP); {Contacts} DHT contacts; serving {Served} item(s); {Resumed} task(s) resumed",
            _node.Key.NodeId.ToHex(), _node.EndPoint, stats.RoutingTableSize, served, resumed);
    }

    /// <summary>
    /// The data directory holds the task list (request headers, signed URLs) and the node key: created 0700, and an
    /// existing one that group or others may read is tightened to 0700, once, saying so.
    /// </summary>
    private void PrepareDataDirectory()
    {
        string dir = Config.DataDirectory;
        DataDirectory.Create(dir);
        try
        {
            if (DataDirectory.Tighten(dir) is { } was)
                _logger.LogInformation("data directory {Directory} was accessible to other users (mode {Mode}); changed it to 0700: it holds request headers and signed URLs of tasks", dir, DataDirectory.Octal(was));
        }
        catch (UnauthorizedAccessException)
        {
            _logger.LogWarning("data directory {Directory} is accessible to other users and belongs to another user, so this node cannot make it 0700; run 'chmod 700 {Directory}' as its owner: it holds request headers and signed URLs of tasks", dir, dir);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _logger.LogInformation("stopping: {Running} task(s) running; verified pieces are kept and the tasks resume at the next start", _tasks.Values.Count(t => t.State == "running"));
        SaveTasks(); // before cancelling: running tasks are what the next start resumes
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var t in _tasks.Values) await t.Cancel.CancelAsync().ConfigureAwait(false);
        var runs = _tasks.Values.Select(t => t.Run).Where(r => r != null).Cast<Task>().ToArray();
        try
        {
            await Task.WhenAll(runs).WaitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException) { }
        _oci?.Dispose();
        _registries?.Dispose();
        if (Interlocked.Exchange(ref _node, null) is { } node) await node.DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        // Registered as a singleton and as a hosted service: the container may dispose it twice.
        if (Interlocked.Exchange(ref _node, null) is { } node) await node.DisposeAsync().ConfigureAwait(false);
        foreach (var t in _tasks.Values) t.Dispose();
    }

    public IReadOnlyList<TaskInfo> Tasks => [.. _tasks.Values.OrderBy(t => t.Started).Select(t => t.Info())];

    public TaskInfo? FindTask(string id) => _tasks.TryGetValue(id, out var t) ? t.Info() : null;

    /// <summary>
    /// Starts a task; returns it at once (poll <see cref="FindTask"/> for progress). <paramref name="output"/>: the file the
    /// client handed over for <see cref="TaskRequest.OutputToken"/>, owned by the task from here on (closed here when the
    /// request is refused).
    /// </summary>
    public TaskInfo Start(TaskRequest request, HandedOutput? output = null, string? id = null)
    {
        try
        {
            Validate(request, output);
        }
        catch
        {
            output?.Dispose();
            throw;
        }
        var task = new TaskState(id ?? Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6)), request) { Output = output };
        _tasks[task.Id] = task;
        task.Run = Task.Run(() => RunAsync(task));
        SaveTasks();
        return task.Info();
    }

    private static void Validate(TaskRequest request, HandedOutput? output)
    {
        if (request.Kind is not ("get" or "seed")) throw new ArgumentException($"unknown task kind '{request.Kind}': get or seed");
        if (request.OutputToken != null && output == null)
            throw new ArgumentException("the output file this request names was not handed to this node, or too long ago; run the get again");
        if (output != null && request.Kind != "get") throw new ArgumentException("only a get writes an output file");
        if (request.Output != null && !Path.IsPathFullyQualified(request.Output)) throw new ArgumentException($"output '{request.Output}' must be an absolute path");
        // What the output is (file, FIFO, device, link) is decided before the download: a refusal costs no transfer. A file the
        // client handed over was decided there (the path is the client's: the node may not even see it).
        if (request.Output != null && output == null)
        {
            try
            {
                OutputTarget.Inspect(request.Output);
            }
            catch (IOException e)
            {
                throw new ArgumentException(e.Message, e);
            }
        }
        bool url = OriginRequest.AsUrl(request.Source) != null;
        if (request.Kind == "get" && !url && !ContentId.TryParse(request.Source, out _))
            throw new ArgumentException($"'{request.Source}' is not a content id or URL: expected swarm:// followed by 64 hex digits or an http(s) URL");
        bool oci = request.Source.StartsWith("oci://", StringComparison.OrdinalIgnoreCase);
        if (oci)
        {
            if (request.Kind != "seed") throw new ArgumentException("oci:// references are for 'swarm seed' (preheat); pull images through the registry mirror");
            try
            {
                OciReference.Parse(request.Source);
                if (request.Platform != null) OciPlatform.Parse(request.Platform);
            }
            catch (FormatException e)
            {
                throw new ArgumentException(e.Message, e);
            }
        }
        if (request.Kind == "seed" && !url && !oci && !File.Exists(request.Source)) throw new ArgumentException($"file not found on the node's host: {request.Source}");
    }

    /// <summary>Cancels a task (the pieces it verified stay in the store). False when there is no such task.</summary>
    public bool Cancel(string id)
    {
        if (!_tasks.TryRemove(id, out var task)) return false;
        task.Cancel.Cancel();
        SaveTasks();
        return true;
    }

    /// <summary>Removes content from the node: cancels its tasks, stops serving and announcing it, deletes it from the store.</summary>
    public async Task<bool> RemoveContentAsync(ContentId id)
    {
        foreach (var t in _tasks.Values.Where(t => t.Content == id).ToList()) Cancel(t.Id);
        return await Node.RemoveAsync(id).ConfigureAwait(false);
    }

    private async Task RunAsync(TaskState task)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(task.Cancel.Token, _stop.Token);
        var ct = linked.Token;
        var request = task.Request;
        try
        {
            var node = Node;
            StoredContent content;
            Bitfield? verifiedInMemory = null; // null: the export re-hashes every stored piece
            var url = OriginRequest.AsUrl(request.Source);
            var headers = OriginRequest.ParseHeaders(request.Headers);
            if (request.Kind == "seed" && request.Source.StartsWith("oci://", StringComparison.OrdinalIgnoreCase))
            {
                var preheat = await Swarm.Node.Mirror.OciPreheat.RunAsync(node, _oci!, _registries!, OciReference.Parse(request.Source),
                    request.Platform is { } pl ? OciPlatform.Parse(pl) : null,
                    new InlineProgress<(long Done, long Total)>(p => { task.Total = p.Total; task.Verified = p.Done; }),
                    line => _logger.LogInformation("task {Task}: {Line}", task.Id, task.Redactor.Scrub(line)), ct).ConfigureAwait(false);
                Interlocked.Add(ref _fromOrigin, preheat.FromUpstream);
                task.Result = preheat.Digest;
                task.Total = task.Verified = preheat.Bytes;
                task.State = "done";
                return;
            }
            if (request.Kind == "seed")
            {
                if (url != null)
                {
                    var key = TaskKey.For(url, request.Tag, request.Filters);
                    using var origin = new OriginClient(headers, filters: request.Filters);
                    var ingested = await OriginIngest.RunAsync(node, url, key, origin, new InlineProgress<(long Done, long Total)>(p => OriginProgress(task, p.Done, p.Total)),
                        (live, validators) =>
                        {
                            task.Content = live;
                            return TaskPointers.PublishAsync(node, key, live, validators, ct, live: true);
                        }, ct).ConfigureAwait(false);
                    content = ingested.Content;
                    await node.ServeAsync(content, ct).ConfigureAwait(false);
                    await TaskPointers.PublishAsync(node, key, content.Id, ingested.Validators, ct).ConfigureAwait(false);
                }
                else
                {
                    long total = new FileInfo(request.Source).Length;
                    content = await Ingest.FileAsync(node.Store, request.Source, node.Key, new InlineProgress<long>(d => { task.Total = total; task.Verified = d; }), ct).ConfigureAwait(false);
                    await node.ServeAsync(content, ct).ConfigureAwait(false);
                }
            }
            else if (url != null)
            {
                var fetch = new UrlFetchRequest(url, TaskKey.For(url, request.Tag, request.Filters))
                {
                    Headers = headers,
                    BackToSource = !request.NoBackToSource,
                    WaitForOthers = node.Engine.Options.StallTimeout,
                    Peers = [.. request.Peers.Select(EndPoints.Parse)],
                    Display = TaskKey.Redact(url, request.Filters),
                    TrustedPublishers = Config.TrustedPublishers,
                    Digest = request.Digest is { } d ? ContentDigest.Parse(d) : null,
                };
                // Every task of the same task key (a resumed one included) waits for one fetch; each checks and exports for itself.
                var result = await _fetches.RunAsync("url:" + fetch.TaskKey.ToHex(), Variant(request), task, (shared, token) =>
                    UrlFetch.RunAsync(node, fetch, SharedSwarmProgress(shared), SharedOriginProgress(shared),
                        line => _logger.LogInformation("task {Task}: {Line}", string.Join(",", shared.Listeners.Select(t => t.Id)),
                            task.Redactor.Scrub(line.StartsWith("swarm: ", StringComparison.Ordinal) ? line[7..] : line)), token), ct).ConfigureAwait(false);
                content = result.Content;
                verifiedInMemory = result.VerifiedInMemory;
            }
            else
            {
                if (!ContentId.TryParse(request.Source, out var id)) throw new ArgumentException($"'{request.Source}' is not a content id");
                task.Content = id;
                var peers = request.Peers.Select(EndPoints.Parse).ToArray();
                // One download per id, whoever asks: the others wait for it (the engine would join them too, but this keeps
                // a cancelled task from stopping the dialling the others depend on).
                var result = await _fetches.RunAsync("id:" + id.Hex, "", task, async (shared, token) =>
                {
                    var before = node.SnapshotVerified(id);
                    var downloaded = await node.Engine.DownloadAsync(id, peers, SharedSwarmProgress(shared), token, node.Discovery).ConfigureAwait(false);
                    return new UrlFetchResult(downloaded, false, 0, id, downloaded.VerifiedSince(before));
                }, ct).ConfigureAwait(false);
                content = result.Content;
                verifiedInMemory = result.VerifiedInMemory;
            }
            task.Content ??= content.Id;
            task.Total = task.Verified = content.Layout.Length;
            if (request.Digest is { } digest) ContentDigest.Verify(content, digest);
            if (task.Output is { } handed)
            {
                string shown = request.Output ?? "the output";
                content = await node.ExportCheckedAsync(content, shown, (c, inMemory) => handed.Write(c, inMemory, shown, ct), verifiedInMemory,
                    [.. request.Peers.Select(EndPoints.Parse)], SwarmProgress(task), ct).ConfigureAwait(false);
                handed.Dispose(); // before the task is done: a FIFO's reader then sees the end, and the client names a complete file
            }
            else if (request.Output != null)
            {
                content = await node.ExportCheckedAsync(content, request.Output, verifiedInMemory, [.. request.Peers.Select(EndPoints.Parse)], SwarmProgress(task), ct).ConfigureAwait(false);
            }
            ContentUsed?.Invoke(content.Id);
            task.State = "done";
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            task.State = _stop.IsCancellationRequested ? "interrupted" : "cancelled";
            task.Error = _stop.IsCancellationRequested ? "the node is stopping; the task resumes when it starts again" : "cancelled";
            task.ErrorKind = "interrupted";
        }
        catch (Exception e)
        {
            task.State = "failed";
            // Errors from deep down may print the URL (or worse): shown only scrubbed.
            task.Error = task.Redactor.Scrub(e.Message);
            task.ErrorKind = e switch
            {
                ArgumentException or FormatException => "usage",
                PeerUnavailableException or OriginException or IngesterGoneException or RegistryException => "unavailable",
                DigestMismatchException => "digest",
                _ => "local",
            };
            if (task.ErrorKind == "local" && e is not (IOException or InvalidDataException or UnauthorizedAccessException))
                _logger.LogError("task {Task} ({Source}) failed unexpectedly: {Error}", task.Id, task.Redactor.Source, task.Redactor.Scrub(e.ToString()));
            else _logger.LogWarning("task {Task} ({Source}) failed: {Error}", task.Id, task.Redactor.Source, task.Error);
        }
        finally
        {
            task.Output?.Dispose();
            task.Finished = DateTimeOffset.UtcNow;
            if (!_stop.IsCancellationRequested) SaveTasks();
        }
    }

    // ---- repair: content that lost pieces to rot in the store is fetched again in the background ----

    private readonly ConcurrentDictionary<ContentId, bool> _repairs = new();

    private void OnPieceRotten(StoredContent content, int piece)
    {
        // One repair per content at a time; pieces that rot while it runs are fetched by the same download.
        if (_stop.IsCancellationRequested || content.Manifest.IsLive || !_repairs.TryAdd(content.Id, true)) return;
        _ = Task.Run(() => RepairAsync(content.Id));
    }

    private async Task RepairAsync(ContentId id)
    {
        try
        {
            var node = Node;
            _logger.LogInformation("repair: fetching the pieces of {Id} that failed their hash check in the store from peers", id.ToUri());
            var content = await node.Engine.DownloadAsync(id, [], null, _stop.Token, node.Discovery).ConfigureAwait(false);
            _logger.LogInformation("repair of {Id} done: all {Pieces} pieces verified again", id.ToUri(), content.Layout.PieceCount);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { }
        catch (Exception e) when (e is PeerUnavailableException or IOException or InvalidOperationException)
        {
            _logger.LogWarning("repair of {Id} failed: {Error}; its rotten pieces stay missing (not served) until a later 'swarm get' of it fetches them", id.ToUri(), e.Message);
        }
        finally
        {
            _repairs.TryRemove(id, out _);
        }
    }

    /// <summary>
    /// What, besides the key, decides a URL fetch's result: requests that differ in it do not share a fetch (another
    /// request's credentials must not stand in for this one's, nor its digest or fallback rule).
    /// </summary>
    private static string Variant(TaskRequest request) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join("\n",
            [request.Digest ?? "", request.NoBackToSource ? "no-back-to-source" : "", string.Join("\u0001", request.Filters), .. request.Headers]))));

    private InlineProgress<(long Done, long Total)> SharedOriginProgress(SharedFetch<TaskState, UrlFetchResult> shared)
    {
        long[] seen = [0]; // the node's origin counter counts the shared fetch once, not once per waiting task
        return new(p =>
        {
            long delta = Advance(ref seen[0], p.Done);
            if (delta > 0) Interlocked.Add(ref _fromOrigin, delta);
            shared.Each(t =>
            {
                t.FromOrigin = p.Done;
                t.Total = p.Total;
                t.Verified = p.Done;
            });
        });
    }

    private static InlineProgress<TransferProgress> SharedSwarmProgress(SharedFetch<TaskState, UrlFetchResult> shared) =>
        new(p => shared.Each(t => ApplySwarmProgress(t, p)));

    private void OriginProgress(TaskState task, long done, long total)
    {
        long delta = Advance(ref task.FromOrigin, done);
        if (delta > 0) Interlocked.Add(ref _fromOrigin, delta);
        task.Total = total;
        task.Verified = done;
    }

    /// <summary>Raises <paramref name="seen"/> to <paramref name="done"/> if that is higher; returns by how much (never negative).</summary>
    private static long Advance(ref long seen, long done)
    {
        while (true)
        {
            long was = Interlocked.Read(ref seen);
            if (done <= was) return 0;
            if (Interlocked.CompareExchange(ref seen, done, was) == was) return done - was;
        }
    }

    private static InlineProgress<TransferProgress> SwarmProgress(TaskState task) => new(p => ApplySwarmProgress(task, p));

    private static void ApplySwarmProgress(TaskState task, TransferProgress p)
    {
        task.Total = p.TotalBytes;
        task.Verified = p.VerifiedBytes;
        task.FromPeers = p.BytesFromPeers;
        task.Peers = p.Peers;
    }

    // ---- the task list survives restarts: unfinished tasks resume ----

    private void SaveTasks()
    {
        try
        {
            var unfinished = _tasks.Values.Where(t => t.State == "running" || (t.State == "interrupted" && _stop.IsCancellationRequested))
                .Select(t => new SavedTask(t.Id, Resumable(t.Request))).ToList();
            string path = Path.Combine(Config.DataDirectory, TasksFile);
            lock (_tasks)
            {
                // It holds the tasks' headers and signed URLs: the temporary file is created 0600 before anything is written
                // (a chmod afterwards would leave a window), and a stale one of another mode is not reused.
                string tmp = path + ".tmp";
                File.Delete(tmp);
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
                if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                using (var file = new FileStream(tmp, options))
                    JsonSerializer.Serialize(file, unfinished);
                File.Move(tmp, path, overwrite: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning("could not save the task list: {Error}", e.Message);
        }
    }

    /// <summary>
    /// A task as a restarted node resumes it. A file the client handed over does not outlive this process, and the path is the
    /// client's (another mount namespace, another user's rights): the resumed task fetches into the store only, and the same get
    /// run again writes the file.
    /// </summary>
    private static TaskRequest Resumable(TaskRequest request) => request.OutputToken == null ? request : request with { OutputToken = null, Output = null };

    private List<(string Id, TaskRequest Request)> LoadTasks()
    {
        string path = Path.Combine(Config.DataDirectory, TasksFile);
        if (!File.Exists(path)) return [];
        try
        {
            var saved = JsonSerializer.Deserialize<List<SavedTask>>(File.ReadAllText(path)) ?? [];
            return [.. saved.Where(s => s.Request != null).Select(s => (s.Id, s.Request))];
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            _logger.LogWarning("ignoring the unreadable task list {Path}: {Error}", path, e.Message);
            return [];
        }
    }

    private sealed record SavedTask(string Id, TaskRequest Request);
}
