using System.CommandLine;
using System.Text.Json;
using Swarm.Core.Exchange;
using Swarm.Node;

namespace Swarm.Cli;

/// <summary><c>swarm status</c>, <c>ls</c>, <c>rm</c> and <c>limit</c>: ask the running node through its control socket.</summary>
internal static class ControlCommands
{
    private static Option<bool> JsonOption() => new("--json") { Description = "Print JSON instead of a table." };

    private static async Task<NodeClient> ConnectAsync(string? dataDir, CancellationToken ct)
    {
        string dir = DataDirectory.Resolve(dataDir);
        return await NodeClient.TryConnectAsync(dir, ct).ConfigureAwait(false)
            ?? throw new NodeNotRunningException($"no swarm node is running with data directory {dir} (no answer on {NodeConfig.SocketPath(dir)}); start one with 'swarm node --data-dir {dir}'");
    }

    public static Command Status()
    {
        var dataDir = CommonOptions.DataDir();
        var json = JsonOption();
        var command = new Command("status", "Show the running node: identity, address, DHT, connections, store, limits, traffic.") { dataDir, json };
        command.SetAction(async (parse, ct) => await RunAsync("status", async () =>
        {
            using var client = await ConnectAsync(parse.GetValue(dataDir), ct).ConfigureAwait(false);
            var s = await client.GetAsync<StatusInfo>("v1/status", ct).ConfigureAwait(false);
            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(s, NodeClient.JsonOptions));
                return;
            }
            Console.Out.WriteLine($"node        {s.NodeId}");
            Console.Out.WriteLine($"listening   {s.Listen} (TCP and UDP)");
            Console.Out.WriteLine($"data        {s.DataDirectory}");
            Console.Out.WriteLine($"uptime      {ProgressLine.FormatDuration(TimeSpan.FromSeconds(s.UptimeSeconds))}");
            Console.Out.WriteLine($"dht         {s.DhtContacts} contacts");
            Console.Out.WriteLine($"peers       {s.Connections} connections");
            Console.Out.WriteLine($"store       {s.Content} item(s), {Units.Bytes(s.StoreBytes)}" + (s.Quota > 0 ? $" of {Units.Bytes(s.Quota)} quota" : ""));
            Console.Out.WriteLine($"tasks       {s.TasksRunning} running");
            Console.Out.WriteLine($"limits      upload {(s.UploadRate > 0 ? Swarm.Core.Exchange.ByteRate.Format(s.UploadRate) : "none")}, download {(s.DownloadRate > 0 ? Swarm.Core.Exchange.ByteRate.Format(s.DownloadRate) : "none")}");
            Console.Out.WriteLine($"traffic     {Units.Bytes(s.BytesFromPeers)} from peers, {Units.Bytes(s.BytesFromOrigin)} from origins, {Units.Bytes(s.BytesUploaded)} to peers");
        }).ConfigureAwait(false));
        return command;
    }

    public static Command List()
    {
        var dataDir = CommonOptions.DataDir();
        var json = JsonOption();
        var command = new Command("ls", "List the node's tasks and the content in its store: state, size, progress, peers.") { dataDir, json };
        command.SetAction(async (parse, ct) => await RunAsync("ls", async () =>
        {
            using var client = await ConnectAsync(parse.GetValue(dataDir), ct).ConfigureAwait(false);
            var tasks = await client.GetAsync<List<TaskInfo>>("v1/tasks", ct).ConfigureAwait(false);
            var content = await client.GetAsync<List<ContentInfo>>("v1/content", ct).ConfigureAwait(false);
            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(new { tasks, content }, NodeClient.JsonOptions));
                return;
            }
            Console.Out.WriteLine($"{"TASK",-12} {"STATE",-11} {"PROGRESS",-8} {"SIZE",10} {"PEERS",5}  SOURCE");
            foreach (var t in tasks)
                Console.Out.WriteLine($"{t.Id,-12} {t.State,-11} {(t.Total > 0 ? 100.0 * t.Verified / t.Total : 0),7:0.0}% {Units.Bytes(t.Total),10} {t.Peers,5}  {t.Request.Source}{(t.Error != null ? "  (" + t.Error + ")" : "")}");
            Console.Out.WriteLine();
            Console.Out.WriteLine($"{"CONTENT",-20} {"STATE",-9} {"PROGRESS",-8} {"SIZE",10} {"PEERS",5} {"UPLOADED",10}  LAST USED             IMAGE DIGEST");
            foreach (var c in content)
            {
                string state = c.Complete ? (c.Live ? "live" : "complete") : "partial";
                if (c.InUse) state += "*";
                Console.Out.WriteLine($"{c.Id[..Math.Min(20, c.Id.Length)],-20} {state,-9} {(c.Length > 0 ? 100.0 * c.Verified / c.Length : 100),7:0.0}% {Units.Bytes(c.Length),10} {c.Peers,5} {Units.Bytes(c.Uploaded),10}  {c.LastUsed:yyyy-MM-dd HH:mm:ss}Z{(c.Digest != null ? "  " + c.Digest : "")}");
            }
        }).ConfigureAwait(false));
        return command;
    }

    public static Command Remove()
    {
        var dataDir = CommonOptions.DataDir();
        var ids = new Argument<string[]>("ID") { Description = "Task ids (from 'swarm ls') to cancel, or content ids (swarm://…) to remove from the node's store.", Arity = ArgumentArity.OneOrMore };
        var command = new Command("rm", "Cancel tasks, or remove content from the running node (stops serving it, withdraws it from the DHT, deletes it from the store).") { dataDir, ids };
        command.SetAction(async (parse, ct) => await RunAsync("rm", async () =>
        {
            using var client = await ConnectAsync(parse.GetValue(dataDir), ct).ConfigureAwait(false);
            var missing = new List<string>();
            foreach (var id in parse.GetValue(ids)!)
            {
                bool content = id.StartsWith("swarm://", StringComparison.Ordinal) || id.Length == 64;
                string path = content ? "v1/content/" + Uri.EscapeDataString(id.Replace("swarm://", "", StringComparison.Ordinal)) : "v1/tasks/" + Uri.EscapeDataString(id);
                if (await client.SendAsync(HttpMethod.Delete, path, ct).ConfigureAwait(false)) Console.Error.WriteLine($"swarm: removed {id}");
                else missing.Add(id);
            }
            if (missing.Count > 0) throw new UsageException($"the node has no {string.Join(", ", missing)} (see 'swarm ls')");
        }).ConfigureAwait(false));
        return command;
    }

    public static Command Limit()
    {
        var dataDir = CommonOptions.DataDir();
        var upload = new Option<string?>("--upload-rate") { Description = "New upload limit, e.g. 10MiB/s, 100mbit; 0 for none." };
        var download = new Option<string?>("--download-rate") { Description = "New download limit; 0 for none." };
        var command = new Command("limit", "Change the running node's upload and download limits without restarting it.") { dataDir, upload, download };
        command.SetAction(async (parse, ct) => await RunAsync("limit", async () =>
        {
            using var client = await ConnectAsync(parse.GetValue(dataDir), ct).ConfigureAwait(false);
            var result = await client.SendAsync<JsonElement>(HttpMethod.Put, "v1/limits", new LimitsRequest(parse.GetValue(upload), parse.GetValue(download)), ct).ConfigureAwait(false);
            long up = result.GetProperty("uploadRate").GetInt64(), down = result.GetProperty("downloadRate").GetInt64();
            Console.Error.WriteLine($"swarm: limits now upload {(up > 0 ? Swarm.Core.Exchange.ByteRate.Format(up) : "none")}, download {(down > 0 ? Swarm.Core.Exchange.ByteRate.Format(down) : "none")}");
        }).ConfigureAwait(false));
        return command;
    }

    private static async Task<int> RunAsync(string name, Func<Task> body)
    {
        try
        {
            await body().ConfigureAwait(false);
            return ExitCodes.Ok;
        }
        catch (NodeNotRunningException e)
        {
            Console.Error.WriteLine($"swarm: {name}: {e.Message}");
            return ExitCodes.Unavailable;
        }
        catch (Exception e)
        {
            return Errors.Report(name, e);
        }
    }
}
