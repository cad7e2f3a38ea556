using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Swarm.Core.Content;
using Swarm.Core.Exchange;

namespace Swarm.Node;

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
        builder.Services.AddHostedService<ReadyReport>();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
        NodeTelemetry.Add(builder, config);
        // With NOTIFY_SOCKET set (systemd Type=notify, podman --sdnotify): READY=1 on that socket once the host
        // has started (after ReadyReport), STOPPING=1 when it begins to stop, SIGTERM as the stop signal. Where SYSTEMD_EXEC_PID
        // names this process, log lines take journald's form (a <N> priority prefix, no timestamp of our own: journald adds
        // one); anywhere else nothing changes. After the console logger, whose formatter this replaces under systemd.
        builder.Host.UseSystemd();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.ListenUnixSocket(config.ControlSocket);
            if (config.Metrics != null) k.Listen(config.Metrics);
            if (config.Mirror != null) k.Listen(config.Mirror);
        });
        var app = builder.Build();
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
        NodeTelemetry.MapMetrics(app);

        app.MapGet("/v1/status", (NodeRuntime r) =>
        {
            var n = r.Node;
            var ids = n.Store.List();
            return Results.Json(new StatusInfo(n.Key.NodeId.ToHex(), n.EndPoint?.ToString() ?? "", r.Config.DataDirectory, n.Dht?.GetStats().RoutingTableSize ?? 0,
                n.Engine.Connections, ids.Count, ids.Sum(n.Store.DiskUsage), r.Config.Quota, n.Engine.UploadRate, n.Engine.DownloadRate,
                r.Tasks.Count(t => t.State == TaskState.Running), n.Engine.TotalBytesFromPeers, r.BytesFromOrigin, n.Engine.TotalBytesUploaded,
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
                long up = request.UploadRate is { } u ? Quantities.ParseRate(u) : engine.UploadRate;
                long down = request.DownloadRate is { } d ? Quantities.ParseRate(d) : engine.DownloadRate;
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
