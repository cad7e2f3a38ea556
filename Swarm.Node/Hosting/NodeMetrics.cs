using System.Diagnostics.Metrics;
using Swarm.Core;
using Swarm.Core.Exchange;

namespace Swarm.Node;

/// <summary>
/// The node's state as observable instruments on the meter <see cref="MeterName"/>, read when <c>/metrics</c> is
/// scraped: the engine's and the DHT's counters (kept as plain interlocked fields where the work happens, so the hot
/// paths pay no instrument), the store, tasks, rate limits, the mirror's counters, build info and free disk. Process and
/// runtime metrics come from <see cref="ProcessMetrics"/>; event instruments (tasks, mirror requests) from
/// <see cref="NodeInstruments"/>, piece checks and DHT lookups from <see cref="Telemetry"/>.
/// </summary>
public sealed class NodeMetrics
{
    public const string MeterName = "Swarm.Node.State";

    private readonly NodeRuntime _runtime;
    private readonly Meter _meter;

    public NodeMetrics(NodeRuntime runtime, StoreJanitor janitor, IMeterFactory meters)
    {
        _runtime = runtime;
        _meter = meters.Create(new MeterOptions(MeterName) { Version = Telemetry.Version });
        Counter("swarm_bytes_downloaded_total", "Content bytes received, by source.",
            n => [M(n.Engine.TotalBytesFromPeers, "source", "peer"), M(runtime.BytesFromOrigin, "source", "origin")]);
        Counter("swarm_bytes_uploaded_total", "Content bytes sent to peers.", n => [M(n.Engine.TotalBytesUploaded)]);
        Counter("swarm_pieces_verified_total", "Pieces that matched their hash (downloaded or ingested).", n => [M(n.Engine.PiecesVerified)]);
        Counter("swarm_pieces_failed_total", "Pieces from peers that failed their hash check.", n => [M(n.Engine.PiecesFailed)]);
        Counter("swarm_pieces_rotten_total", "Stored pieces that failed their hash check when read (served, mirrored or exported); dropped and fetched again.",
            n => [M(n.Engine.PiecesRotten)]);
        Gauge("swarm_peers", "Admitted peer sessions (past admission and handshake), all content.", n => [M(n.Engine.Connections)]);
        Gauge("swarm_connections_pending", "Inbound connections still in admission or handshake.", n => [M(n.Engine.PendingHandshakes)]);
        Counter("swarm_connections_refused_total", "Peer connections and sessions refused or closed by the node, by reason.",
            n => n.Engine.Refusals.Totals.Select(t => M(t.Count, "reason", Refusals.Label(t.Reason))));
        Gauge("swarm_banned_peers", "Peers banned for sending bad data.", n => [M(n.Engine.Bans.Count)]);

        Gauge("swarm_dht_routing_table_size", "Contacts in the DHT routing table.", n => n.Dht is { } d ? [M(d.GetStats().RoutingTableSize)] : []);
        Counter("swarm_dht_rpcs_sent_total", "DHT requests this node sent.", n => n.Dht is { } d ? [M(d.GetStats().RpcsSent)] : []);
        Counter("swarm_dht_rpc_results_total", "What became of the DHT requests this node sent, by outcome (answered, timed_out).", n =>
            n.Dht?.GetStats() is { } s ? [M(s.RpcsAnswered, "outcome", "answered"), M(s.RpcsTimedOut, "outcome", "timed_out")] : []);
        Counter("swarm_dht_requests_answered_total", "DHT requests from other nodes this node answered.", n => n.Dht is { } d ? [M(d.GetStats().RequestsAnswered)] : []);
        Counter("swarm_dht_datagrams_dropped_total", "DHT datagrams dropped, by reason.", n => n.Dht?.GetStats() is { } s
            ? [M(s.DroppedMalformed, "reason", "malformed"), M(s.DroppedOversized, "reason", "oversized"), M(s.DroppedRateLimited, "reason", "rate_limited"),
               M(s.DroppedUnsolicited, "reason", "unsolicited"), M(s.DroppedBadKey, "reason", "bad_key"), M(s.DroppedReplayed, "reason", "replayed")]
            : []);
        Gauge("swarm_dht_records_held", "Provider and signed records held for other nodes.", n => n.Dht?.GetStats() is { } s
            ? [M(s.ProvidersHeld, "kind", "provider"), M(s.RecordsHeld, "kind", "record")] : []);

        Counter("swarm_mirror_responses_total", "Registry mirror error responses, by class.", _ => runtime.Mirror?.Counters is { } m
            ? [M(m.NotFound, "class", "not_found"), M(m.ClientErrors, "class", "client_error")] : []);
        Counter("swarm_mirror_bytes_served_total", "Blob bytes the mirror sent to its clients.", _ => runtime.Mirror?.Counters is { } m ? [M(m.BytesServed)] : []);
        Counter("swarm_mirror_streams_cut_total", "Blob responses cut after their headers (the swarm and the upstream both failed, or a digest mismatch).",
            _ => runtime.Mirror?.Counters is { } m ? [M(m.Cut)] : []);

        Gauge("swarm_store_bytes", "Bytes of content in the store (data file lengths).", n => [M(n.Store.List().Sum(n.Store.DiskUsage))]);
        Gauge("swarm_store_items", "Entries in the store.", n => [M(n.Store.List().Count)]);
        Gauge("swarm_store_quota_bytes", "The store's quota (0: none).", _ => [M(runtime.Config.Quota)]);
        Counter("swarm_store_evictions_total", "Content evicted by quota or TTL.", _ => [M(janitor.Evicted)]);
        Gauge("swarm_data_dir_free_bytes", "Free disk space for the node in the file system of its data directory.", _ => FreeBytes(runtime.Config.DataDirectory));
        Gauge("swarm_tasks", "Tasks by state.", _ =>
        {
            var tasks = runtime.Tasks;
            return Enum.GetValues<TaskState>().Select(st => M(tasks.Count(t => t.State == st), "state", NodeInstruments.StateLabel(st)));
        });
        Gauge("swarm_upload_rate_limit_bytes_per_second", "Upload limit in force, bytes per second (0: none).", n => [M(n.Engine.UploadRate)]);
        Gauge("swarm_download_rate_limit_bytes_per_second", "Download limit in force, bytes per second (0: none).", n => [M(n.Engine.DownloadRate)]);
        Gauge("swarm_build_info", "Always 1; the labels say which build runs.", _ => [Telemetry.Revision.Length > 0
            ? new Measurement<long>(1, new("version", Telemetry.Version), new("revision", Telemetry.Revision))
            : M(1, "version", Telemetry.Version)]);
        ProcessMetrics.Register(_meter);
    }

    private LocalNode? Node
    {
        get
        {
            try
            {
                return _runtime.Node;
            }
            catch (InvalidOperationException)
            {
                return null; // not started yet, or stopped: nothing to report
            }
        }
    }

    private void Counter(string name, string help, Func<LocalNode, IEnumerable<Measurement<long>>> observe) =>
        _meter.CreateObservableCounter(name, () => Node is { } n ? observe(n) : [], null, help);

    private void Gauge(string name, string help, Func<LocalNode, IEnumerable<Measurement<long>>> observe) =>
        _meter.CreateObservableGauge(name, () => Node is { } n ? observe(n) : [], null, help);

    private static Measurement<long> M(long value) => new(value);

    private static Measurement<long> M(long value, string label, string labelValue) => new(value, new KeyValuePair<string, object?>(label, labelValue));

    private static IEnumerable<Measurement<long>> FreeBytes(string directory)
    {
        long free;
        try
        {
            free = new DriveInfo(directory).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            yield break;
        }
        yield return M(free);
    }
}
