using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Swarm.Core.Content;
using Swarm.Core.Exchange;

namespace Swarm.Node;

/// <summary>What <c>swarm status</c> shows.</summary>
public sealed record StatusInfo(string NodeId, string Listen, string DataDirectory, int DhtContacts, int Connections, int Content, long StoreBytes,
    long Quota, long UploadRate, long DownloadRate, int TasksRunning, long BytesFromPeers, long BytesFromOrigin, long BytesUploaded, double UptimeSeconds);

/// <summary>One store entry, as <c>swarm ls</c> shows it.</summary>
public sealed record ContentInfo(string Id, long Length, long Verified, bool Complete, bool Live, int Peers, long Uploaded, DateTime LastUsed, bool InUse, string[] Tasks)
{
    /// <summary>The OCI digest this content is (a blob or manifest the registry mirror or a preheat holds), if any.</summary>
    public string? Digest { get; init; }
}

/// <summary>What <c>swarm dht</c> shows: the node's view of the DHT.</summary>
public sealed record DhtView(string NodeId, string? Endpoint, string? External, int RoutingTable, IReadOnlyList<DhtBucketView> Buckets,
    int RecordsHeld, int ProvidersHeld, int ProviderKeys, long DatagramsReceived, long DatagramsDropped)
{
    public static DhtView From(Swarm.Core.Dht.DhtStats s) => new(s.NodeId.ToHex(), s.LocalEndPoint?.ToString(), s.ExternalEndPoint?.ToString(), s.RoutingTableSize,
        [.. s.Buckets.Select(b => new DhtBucketView(b.Index, b.Count))], s.RecordsHeld, s.ProvidersHeld, s.ProviderKeys, s.DatagramsReceived, s.DatagramsDropped);
}

/// <summary>One routing-table bucket: the ids in it share this many leading bits with the node's own.</summary>
public sealed record DhtBucketView(int SharedPrefixBits, int Nodes);

/// <summary>Rate limits to set at run time (<c>swarm limit</c>): e.g. 10MiB/s, 100mbit, 0 for none; null leaves one as it is.</summary>
public sealed record LimitsRequest(string? UploadRate, string? DownloadRate);

/// <summary>
/// The node service on Microsoft.Extensions.Hosting and Kestrel: the control API over a Unix socket in the data directory
/// (mode 0600: only the node's user may drive it), and /metrics and /healthz on the metrics address.
/// </summary>
public static class NodeHost
{
    public static WebApplication Build(NodeConfig config)
    {
        PrepareSocket(config.ControlSocket);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.SetMinimumLevel(config.LogLevel);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        // A hosted service that fails to start is reported by `swarm node` in one line of its own words; the host's own
        // "Hosting failed to start" entry would print the exception's stack trace before it.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);
        builder.Services.AddSingleton(config);
        builder.Services.AddSingleton<NodeRuntime>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<NodeRuntime>());
        builder.Services.AddSingleton<StoreJanitor>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<StoreJanitor>());
        // After NodeRuntime, which makes the data directory: the output socket lives in it.
        builder.Services.AddSingleton(sp => new HandedOutputs(HandedOutputs.SocketPath(config.DataDirectory), sp.GetRequiredService<ILogger<HandedOutputs>>(), TimeProvider.System));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<HandedOutputs>());
        builder.Services.Configure<Microsoft.Extensions.Hosting.HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ListenUnixSocket(config.ControlSocket);
            if (config.Metrics != null) k.Listen(config.Metrics);
            if (config.Mirror != null) k.Listen(config.Mirror);
        });
        var app = builder.Build();
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            try
            {
                if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(config.ControlSocket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            catch (IOException) { }
            // Only now do the control socket and the metrics address accept requests.
            app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Swarm.Node.NodeHost")
                .LogInformation("ready: control socket {Socket}; metrics {Metrics}; registry mirror {Mirror}", config.ControlSocket,
                    config.Metrics?.ToString() ?? "off", config.Mirror?.ToString() ?? "off");
        });
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            try { File.Delete(config.ControlSocket); } catch (IOException) { }
        });
        Map(app);
        return app;
    }

    /// <summary>A socket file left by a node that died is removed; one a live node answers on is an error.</summary>
    private static void PrepareSocket(string path)
    {
        if (!File.Exists(path)) return;
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException)
        {
            File.Delete(path); // stale
            return;
        }
        throw new ConfigException($"another swarm node is already running with this data directory (it answers on {path}); stop it, or give this one another --data-dir");
    }

    private static void Map(WebApplication app)
    {
        // The mirror address serves the registry API only; the metrics address only /metrics and /healthz; everything else
        // only on the Unix socket.
        var mirror = app.Services.GetRequiredService<NodeConfig>().Mirror;
        app.Use(async (context, next) =>
        {
            bool tcp = context.Connection.LocalIpAddress != null;
            if (tcp && mirror != null && context.Connection.LocalPort == mirror.Port
                && (mirror.Address.Equals(System.Net.IPAddress.Any) || mirror.Address.Equals(System.Net.IPAddress.IPv6Any) || mirror.Address.Equals(context.Connection.LocalIpAddress)))
            {
                var runtime = context.RequestServices.GetRequiredService<NodeRuntime>();
                if (runtime.Mirror is { } m) await m.HandleAsync(context).ConfigureAwait(false);
                else context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                return;
            }
            if (tcp && context.Request.Path != "/metrics" && context.Request.Path != "/healthz")
            {
                context.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }
            await next(context).ConfigureAwait(false);
        });

        app.MapGet("/healthz", (NodeRuntime r) => r.Node.EndPoint != null ? Results.Text("ok\n") : Results.Text("starting\n", statusCode: 503));
        app.MapGet("/metrics", (NodeRuntime r, StoreJanitor j) => Results.Text(Metrics.Render(r, j), "text/plain; version=0.0.4; charset=utf-8"));

        app.MapGet("/v1/status", (NodeRuntime r) =>
        {
            var n = r.Node;
            var ids = n.Store.List();
            return Results.Json(new StatusInfo(n.Key.NodeId.ToHex(), n.EndPoint?.ToString() ?? "", r.Config.DataDirectory, n.Dht?.GetStats().RoutingTableSize ?? 0,
                n.Engine.Connections, ids.Count, ids.Sum(n.Store.DiskUsage), r.Config.Quota, n.Engine.UploadRate, n.Engine.DownloadRate,
                r.Tasks.Count(t => t.State == "running"), n.Engine.TotalBytesFromPeers, r.BytesFromOrigin, n.Engine.TotalBytesUploaded,
                (DateTimeOffset.UtcNow - r.StartedAt).TotalSeconds));
        });
        app.MapGet("/v1/tasks", (NodeRuntime r) => Results.Json(r.Tasks));
        app.MapGet("/v1/dht", (NodeRuntime r) => r.Node.Dht is { } dht ? Results.Json(DhtView.From(dht.GetStats())) : Error(503, "the node runs without a DHT"));
        app.MapGet("/v1/tasks/{id}", (NodeRuntime r, string id) => r.FindTask(id) is { } t ? Results.Json(t) : Error(404, $"no task {id}"));
        app.MapPost("/v1/tasks", (NodeRuntime r, HandedOutputs outputs, TaskRequest request) =>
        {
            // A file the client handed over (the CLI always does, so that the output is written with its rights, where it sees it).
            var output = outputs.Claim(request.OutputToken);
            try
            {
                var task = r.Start(request, output);
                return Results.Json(task, statusCode: 201);
            }
            catch (ArgumentException e)
            {
                return Error(400, e.Message);
            }
        });
        app.MapDelete("/v1/tasks/{id}", (NodeRuntime r, string id) => r.Cancel(id) ? Results.NoContent() : Error(404, $"no task {id}"));
        app.MapGet("/v1/content", (NodeRuntime r) =>
        {
            var n = r.Node;
            var inUse = r.InUse;
            var tasks = r.Tasks;
            var digests = r.OciDigests;
            var list = new List<ContentInfo>();
            foreach (var id in n.Store.List())
            {
                var swarm = n.Engine.Find(id);
                long length = 0, verified = 0;
                bool complete = false, live = false;
                var content = swarm?.Content;
                if (content != null)
                {
                    (length, verified, complete, live) = (content.Layout.Length, content.VerifiedBytes, content.IsComplete, content.Manifest.IsLive);
                }
                else
                {
                    try
                    {
                        using var opened = n.Store.TryOpen(id);
                        if (opened != null) (length, verified, complete, live) = (opened.Layout.Length, opened.VerifiedBytes, opened.IsComplete, opened.Manifest.IsLive);
                    }
                    catch (Exception e) when (e is IOException or InvalidDataException) { }
                }
                string uri = id.ToUri();
                list.Add(new ContentInfo(uri, length, verified, complete, live, swarm?.PeerCount ?? 0, swarm?.BytesUploaded ?? 0, n.Store.LastUsed(id),
                    inUse.Contains(id) || swarm?.IsDownloading == true, [.. tasks.Where(t => t.ContentId == uri).Select(t => t.Id)])
                { Digest = digests.GetValueOrDefault(id) });
            }
            return Results.Json(list.OrderByDescending(c => c.LastUsed));
        });
        app.MapDelete("/v1/content/{id}", async (NodeRuntime r, string id) =>
        {
            if (!ContentId.TryParse(id, out var cid) && !ContentId.TryParse("swarm://" + id, out cid)) return Error(400, $"'{id}' is not a content id (swarm:// and 64 hex digits)");
            return await r.RemoveContentAsync(cid).ConfigureAwait(false) ? Results.NoContent() : Error(404, $"the store does not hold {cid}");
        });
        app.MapPut("/v1/limits", (NodeRuntime r, LimitsRequest request) =>
        {
            try
            {
                var engine = r.Node.Engine;
                long up = request.UploadRate is { } u ? (u.Trim() == "0" ? 0 : ByteRate.Parse(u)) : engine.UploadRate;
                long down = request.DownloadRate is { } d ? (d.Trim() == "0" ? 0 : ByteRate.Parse(d)) : engine.DownloadRate;
                engine.SetRates(up, down);
                return Results.Json(new { uploadRate = up, downloadRate = down });
            }
            catch (FormatException e)
            {
                return Error(400, e.Message);
            }
        });
    }

    private static IResult Error(int status, string message) => Results.Json(new { error = message }, statusCode: status);
}

/// <summary>Prometheus text exposition of the node's counters and gauges.</summary>
public static class Metrics
{
    private static readonly string[] TaskStates = ["running", "done", "failed", "cancelled", "interrupted"];

    public static string Render(NodeRuntime runtime, StoreJanitor janitor)
    {
        var n = runtime.Node;
        var e = n.Engine;
        var sb = new StringBuilder(4096);
        void Metric(string name, string type, string help, params (string Labels, double Value)[] samples)
        {
            sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            foreach (var (labels, value) in samples)
                sb.Append(name).Append(labels.Length > 0 ? "{" + labels + "}" : "").Append(' ').Append(value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
        }
        Metric("swarm_bytes_downloaded_total", "counter", "Content bytes received, by source.",
            ("source=\"peer\"", e.TotalBytesFromPeers), ("source=\"origin\"", runtime.BytesFromOrigin));
        Metric("swarm_bytes_uploaded_total", "counter", "Content bytes sent to peers.", ("", e.TotalBytesUploaded));
        Metric("swarm_pieces_verified_total", "counter", "Pieces that matched their hash (downloaded or ingested).", ("", e.PiecesVerified));
        Metric("swarm_pieces_failed_total", "counter", "Pieces from peers that failed their hash check.", ("", e.PiecesFailed));
        Metric("swarm_pieces_rotten_total", "counter", "Stored pieces that failed their hash check when read (served, mirrored or exported); dropped and fetched again.", ("", e.PiecesRotten));
        Metric("swarm_peers", "gauge", "Open peer connections.", ("", e.Connections));
        Metric("swarm_connections_refused_total", "counter", "Inbound connections refused at the connection limit.", ("", e.RefusedConnections));
        Metric("swarm_banned_peers", "gauge", "Peers banned for sending bad data.", ("", e.Bans.Count));
        if (n.Dht is { } dht)
        {
            var s = dht.GetStats();
            Metric("swarm_dht_routing_table_size", "gauge", "Contacts in the DHT routing table.", ("", s.RoutingTableSize));
            Metric("swarm_dht_rpcs_total", "counter", "DHT requests this node sent, by outcome.",
                ("outcome=\"answered\"", s.RpcsAnswered), ("outcome=\"timed_out\"", s.RpcsTimedOut), ("outcome=\"sent\"", s.RpcsSent));
            Metric("swarm_dht_requests_answered_total", "counter", "DHT requests from other nodes this node answered.", ("", s.RequestsAnswered));
            Metric("swarm_dht_datagrams_dropped_total", "counter", "DHT datagrams dropped, by reason.",
                ("reason=\"malformed\"", s.DroppedMalformed), ("reason=\"oversized\"", s.DroppedOversized), ("reason=\"rate_limited\"", s.DroppedRateLimited),
                ("reason=\"unsolicited\"", s.DroppedUnsolicited));
            Metric("swarm_dht_records_held", "gauge", "Provider and signed records held for other nodes.", ("kind=\"provider\"", s.ProvidersHeld), ("kind=\"record\"", s.RecordsHeld));
        }
        if (runtime.Mirror is { } mirror)
        {
            var m = mirror.Counters;
            Metric("swarm_mirror_requests_total", "counter", "Registry mirror requests, by kind.", ("kind=\"manifest\"", m.Manifests), ("kind=\"blob\"", m.Blobs));
            Metric("swarm_mirror_responses_total", "counter", "Registry mirror error responses, by class.", ("class=\"not_found\"", m.NotFound), ("class=\"client_error\"", m.ClientErrors));
            Metric("swarm_mirror_bytes_served_total", "counter", "Blob bytes the mirror sent to its clients.", ("", m.BytesServed));
            Metric("swarm_mirror_streams_cut_total", "counter", "Blob responses cut after their headers (the swarm and the upstream both failed, or a digest mismatch).", ("", m.Cut));
        }
        var ids = n.Store.List();
        Metric("swarm_store_bytes", "gauge", "Bytes of content in the store (data file lengths).", ("", ids.Sum(n.Store.DiskUsage)));
        Metric("swarm_store_items", "gauge", "Entries in the store.", ("", ids.Count));
        Metric("swarm_store_quota_bytes", "gauge", "The store's quota (0: none).", ("", runtime.Config.Quota));
        Metric("swarm_store_evictions_total", "counter", "Content evicted by quota or TTL.", ("", janitor.Evicted));
        var tasks = runtime.Tasks;
        Metric("swarm_tasks", "gauge", "Tasks by state.", [.. TaskStates.Select(st => ($"state=\"{st}\"", (double)tasks.Count(t => t.State == st)))]);
        Metric("swarm_upload_rate_limit_bytes", "gauge", "Upload limit in force, bytes/s (0: none).", ("", e.UploadRate));
        Metric("swarm_download_rate_limit_bytes", "gauge", "Download limit in force, bytes/s (0: none).", ("", e.DownloadRate));
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        Metric("process_resident_memory_bytes", "gauge", "Resident set size.", ("", process.WorkingSet64));
        Metric("dotnet_gc_heap_bytes", "gauge", "Managed heap size.", ("", GC.GetGCMemoryInfo().HeapSizeBytes));
        return sb.ToString();
    }
}
