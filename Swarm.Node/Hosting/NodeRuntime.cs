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

/// <summary>
/// The long-running node: the <see cref="LocalNode"/> (exchange + DHT), the tasks clients start through the control
/// API, persisted so a restarted node resumes them from its store, and the counters behind /metrics.
/// Runs as a hosted service: stopped by SIGTERM, it cancels its tasks (verified pieces are journalled), saves the task
/// list and the routing table, and closes its connections.
/// </summary>
public sealed class NodeRuntime : IHostedService, IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, RunningTask> _tasks = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly SharedFetches<RunningTask, UrlFetchResult> _fetches;
    private readonly TaskJournal _journal;
    private readonly ILogger _logger;
    private LocalNode? _node;
    private long _fromOrigin;
    private StoreRepair? _repair;

    public NodeRuntime(NodeConfig config, ILogger<NodeRuntime> logger)
    {
        Config = config;
        _logger = logger;
        _fetches = new(_stop.Token);
        _journal = new TaskJournal(config.DataDirectory, logger);
    }

    public NodeConfig Config { get; }
    public LocalNode Node => _node ?? throw new InvalidOperationException("the node is not started");
    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;
    /// <summary>Bytes this node read from origins (ingests), since start.</summary>
    public long BytesFromOrigin => Interlocked.Read(ref _fromOrigin);
    /// <summary>Content ids that tasks are using now: never evicted.</summary>
    public IReadOnlySet<ContentId> InUse => _tasks.Values.Where(t => t.State == TaskState.Running && t.Content != null).Select(t => t.Content!.Value).ToHashSet();
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
        _node = await LocalNode.StartAsync(Config.DataDirectory, Config.EngineOptions(), _logger, Config.Listen, Config.Bootstrap, cancellationToken, Config.DhtOptions()).ConfigureAwait(false);
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
        _repair = new StoreRepair(_node, _logger, _stop.Token);
        _oci = new Mirror.OciContent(_node, Path.Combine(Config.DataDirectory, "mirror"), _logger, AddOriginBytes);
        if (Config.Mirror != null) Mirror = new Mirror.RegistryMirror(_node, _oci, _registries, Config.Upstream, _logger) { AllowedRegistries = Config.MirrorRegistries };
        int resumed = 0, dropped = 0;
        foreach (var (id, request) in _journal.Load())
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
                _logger.LogWarning("task {Task} saved in {Path} cannot run any more and is dropped: {Error}", id, _journal.Path,
                    new SecretRedactor(request.Source, request.Filters, request.Headers).Scrub(e.Message));
                dropped++;
            }
        }
        if (dropped > 0) SaveTasks();
        var stats = _node.Dht!.GetStats();
        _logger.LogInformation("node {NodeId} listening on {EndPoint} (TCP and UDP); {Contacts} DHT contacts; serving {Served} item(s); {Resumed} task(s) resumed; {Swarm}, peer traffic {Encryption}",
            _node.Key.NodeId.ToHex(), _node.EndPoint, stats.RoutingTableSize, served, resumed,
            Config.Security.SwarmKey is { } key ? $"private swarm (key {key.Fingerprint})" : "open swarm (no swarm key)", Config.Security.Encrypt ? "encrypted" : "NOT encrypted");
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
        _logger.LogInformation("stopping: {Running} task(s) running; verified pieces are kept and the tasks resume at the next start", _tasks.Values.Count(t => t.State == TaskState.Running));
        SaveTasks(); // before cancelling: running tasks are what the next start resumes
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var t in _tasks.Values) await t.Cancel.CancelAsync().ConfigureAwait(false);
        var runs = _tasks.Values.Select(t => t.Run).Where(r => r != null).Cast<Task>().ToArray();
        try
        {
            await Task.WhenAll(runs).WaitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException) { }
        _repair?.Dispose();
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
        var task = new RunningTask(id ?? Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6)), request, AddOriginBytes, _logger) { Output = output };
        _tasks[task.Id] = task;
        task.Run = Task.Run(() => RunAsync(task));
        SaveTasks();
        return task.Info();
    }

    private static void Validate(TaskRequest request, HandedOutput? output)
    {
        if (!Enum.IsDefined(request.Kind)) throw new ArgumentException($"unknown task kind '{request.Kind}': get or seed");
        if (request.OutputToken != null && output == null)
            throw new ArgumentException("the output file this request names was not handed to this node, or too long ago; run the get again");
        if (output != null && request.Kind != TaskKind.Get) throw new ArgumentException("only a get writes an output file");
        TaskRunner.Validate(request);
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

    private async Task RunAsync(RunningTask task)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(task.Cancel.Token, _stop.Token);
        var ct = linked.Token;
        try
        {
            var node = Node;
            var runner = new TaskRunner(node, new TaskRunnerContext
            {
                TrustedPublishers = Config.TrustedPublishers,
                Sharing = new NodeFetchSharing(_fetches, task, AddOriginBytes),
                Oci = _oci,
                Registries = _registries,
            });
            TaskExport? export = task.Output is { } handed ? async (content, shown, inMemory, peers, progress, token) =>
            {
                content = await node.ExportCheckedAsync(content, shown, (c, verified) => handed.Write(c, verified, shown, token), inMemory, peers, progress, token).ConfigureAwait(false);
                handed.Dispose(); // before the task is done: a FIFO's reader then sees the end, and the client names a complete file
                return content;
            } : null;
            var outcome = await runner.RunAsync(task.Request, task, ct, export).ConfigureAwait(false);
            AddOriginBytes(outcome.FromUpstream);
            task.Result = outcome.Content == null ? outcome.Result : null;
            if (outcome.Content is { } done)
            {
                task.Content = done.Id;
                ContentUsed?.Invoke(done.Id);
            }
            Interlocked.Exchange(ref task.Total, outcome.Bytes);
            Interlocked.Exchange(ref task.Verified, outcome.Bytes);
            task.State = TaskState.Done;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            task.State = _stop.IsCancellationRequested ? TaskState.Interrupted : TaskState.Cancelled;
            task.Error = _stop.IsCancellationRequested ? "the node is stopping; the task resumes when it starts again" : "cancelled";
            task.ErrorKind = FailureKind.Interrupted;
        }
        catch (Exception e)
        {
            task.State = TaskState.Failed;
            // Errors from deep down may print the URL (or worse): shown only scrubbed.
            task.Error = task.Redactor.Scrub(e.Message);
            task.ErrorKind = TaskFailure.Classify(e);
            if (!TaskFailure.IsExpected(e))
                _logger.LogError("task {Task} ({Source}) failed unexpectedly: {Error}", task.Id, task.Redactor.Source, task.Redactor.Scrub(e.ToString()));
            else _logger.LogWarning("task {Task} ({Source}) failed: {Error}", task.Id, task.Redactor.Source, task.Error);
        }
        finally
        {
            task.Output?.Dispose();
            task.Finished = DateTimeOffset.UtcNow;
            NodeInstruments.TaskFinished(task.Request.Kind, task.State, task.Finished.Value - task.Started);
            if (!_stop.IsCancellationRequested) SaveTasks();
        }
    }

    // ---- the task list survives restarts: unfinished tasks resume ----

    private void SaveTasks() =>
        _journal.Save(_tasks.Values.Where(t => t.State == TaskState.Running || (t.State == TaskState.Interrupted && _stop.IsCancellationRequested))
            .Select(t => (t.Id, t.Request)));
}
