using System.Text;
using System.Globalization;
using Swarm.Core.Dht;

namespace Swarm.Node;

/// <summary>Prometheus text exposition of the node's counters and gauges.</summary>
public static class Metrics
{

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
        Metric("swarm_peers", "gauge", "Admitted peer sessions (past admission and handshake), all content.", ("", e.Connections));
        Metric("swarm_connections_pending", "gauge", "Inbound connections still in admission or handshake.", ("", e.PendingHandshakes));
        Metric("swarm_connections_refused_total", "counter", "Peer connections and sessions refused or closed by the node, by reason.",
            [.. e.Refusals.Totals.Select(t => ($"reason=\"{Swarm.Core.Exchange.Refusals.Label(t.Reason)}\"", (double)t.Count))]);
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
                ("reason=\"unsolicited\"", s.DroppedUnsolicited), ("reason=\"bad_key\"", s.DroppedBadKey), ("reason=\"replayed\"", s.DroppedReplayed));
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
        Metric("swarm_tasks", "gauge", "Tasks by state.", [.. Enum.GetValues<TaskState>().Select(st => ($"state=\"{System.Text.Json.JsonSerializer.Serialize(st).Trim('"')}\"", (double)tasks.Count(t => t.State == st)))]);
        Metric("swarm_upload_rate_limit_bytes", "gauge", "Upload limit in force, bytes/s (0: none).", ("", e.UploadRate));
        Metric("swarm_download_rate_limit_bytes", "gauge", "Download limit in force, bytes/s (0: none).", ("", e.DownloadRate));
        using var process = System.Diagnostics.Process.GetCurrentProcess();
        Metric("process_resident_memory_bytes", "gauge", "Resident set size.", ("", process.WorkingSet64));
        Metric("dotnet_gc_heap_bytes", "gauge", "Managed heap size.", ("", GC.GetGCMemoryInfo().HeapSizeBytes));
        return sb.ToString();
    }
}
