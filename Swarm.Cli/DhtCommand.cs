using System.CommandLine;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Swarm.Core.Exchange;
using Swarm.Node;

namespace Swarm.Cli;

internal static class DhtCommand
{
    private static readonly JsonSerializerOptions Indented = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Command Create()
    {
        var dataDir = CommonOptions.DataDir();
        var listen = CommonOptions.Listen("0.0.0.0:0");
        var bootstrap = CommonOptions.Bootstrap();
        var json = new Option<bool>("--json") { Description = "Print the view as JSON." };
        var verbose = CommonOptions.Verbose();
        var swarmKey = CommonOptions.SwarmKey();
        var command = new Command("dht", "Print the DHT view of the node running with this data directory (own id, routing table per bucket, records held); with none running, join the DHT with the data directory's identity and saved routing table (plus --bootstrap) and print that.")
        {
            dataDir, listen, bootstrap, json, swarmKey, verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            var logger = new StderrLogger(parse.GetValue(verbose) ? LogLevel.Debug : LogLevel.Warning, null);
            try
            {
                string dir = DataDirectory.Resolve(parse.GetValue(dataDir));
                DhtView view;
                using (var client = await NodeClient.TryConnectAsync(dir, ct).ConfigureAwait(false))
                {
                    if (client != null)
                    {
                        // A node runs with this data directory: show its view rather than starting a second node.
                        if (parse.GetValue(bootstrap) is { Count: > 0 }) Console.Error.WriteLine("swarm: dht: --bootstrap is ignored: the running node has joined already");
                        view = await client.GetAsync<DhtView>("v1/dht", ct).ConfigureAwait(false);
                        Console.Error.WriteLine($"swarm: dht: the node running on {client.SocketPath}");
                    }
                    else
                    {
                        var security = PeerSecurity.Load(dir, parse.GetValue(swarmKey), null);
                        await using var node = await LocalNode.StartAsync(dir, security.Apply(new EngineOptions()), logger,
                            parse.GetValue(listen), parse.GetValue(bootstrap) ?? BootstrapList.Empty, ct, security.Apply(new Swarm.Core.Dht.DhtOptions())).ConfigureAwait(false);
                        view = DhtView.From(node.Dht!.GetStats());
                    }
                }
                if (parse.GetValue(json))
                {
                    Console.Out.WriteLine(JsonSerializer.Serialize(view, Indented));
                }
                else
                {
                    Console.Out.WriteLine($"node id        {view.NodeId}");
                    Console.Out.WriteLine($"endpoint       {view.Endpoint}" + (view.External != null ? $" (seen as {view.External})" : ""));
                    Console.Out.WriteLine($"routing table  {view.RoutingTable} nodes");
                    foreach (var b in view.Buckets) Console.Out.WriteLine($"  bucket {b.SharedPrefixBits,3} (ids sharing {b.SharedPrefixBits} leading bits)  {b.Nodes,3} nodes");
                    Console.Out.WriteLine($"records held   {view.RecordsHeld} signed records, {view.ProvidersHeld} provider records for {view.ProviderKeys} keys");
                    Console.Out.WriteLine($"datagrams      {view.DatagramsReceived} received, {view.DatagramsDropped} dropped");
                }
                return ExitCodes.Ok;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return ExitCodes.Interrupted;
            }
            catch (Exception e)
            {
                return Errors.Report("dht", e);
            }
        });
        return command;
    }
}
