using System.CommandLine;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Swarm.Core.Exchange;
using Swarm.Node;

namespace Swarm.Cli;

internal static class DhtCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create()
    {
        var dataDir = CommonOptions.DataDir();
        var listen = CommonOptions.Listen("0.0.0.0:0");
        var bootstrap = CommonOptions.Bootstrap();
        var json = new Option<bool>("--json") { Description = "Print the view as JSON." };
        var verbose = CommonOptions.Verbose();
        var command = new Command("dht", "Join the DHT with this data directory's identity and saved routing table (plus --bootstrap), and print the view: own id, routing table per bucket, records held.")
        {
            dataDir, listen, bootstrap, json, verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            var logger = new StderrLogger(parse.GetValue(verbose) ? LogLevel.Debug : LogLevel.Warning, null);
            try
            {
                await using var node = await LocalNode.StartAsync(DataDirectory.Resolve(parse.GetValue(dataDir)), new EngineOptions(), logger,
                    parse.GetValue(listen), parse.GetValue(bootstrap) ?? [], ct).ConfigureAwait(false);
                var s = node.Dht!.GetStats();
                if (parse.GetValue(json))
                {
                    var view = new
                    {
                        nodeId = s.NodeId.ToHex(),
                        endpoint = s.LocalEndPoint?.ToString(),
                        external = s.ExternalEndPoint?.ToString(),
                        routingTable = s.RoutingTableSize,
                        buckets = s.Buckets.Select(b => new { sharedPrefixBits = b.Index, nodes = b.Count }),
                        recordsHeld = s.RecordsHeld,
                        providersHeld = s.ProvidersHeld,
                        providerKeys = s.ProviderKeys,
                        datagramsReceived = s.DatagramsReceived,
                        datagramsDropped = s.DatagramsDropped,
                    };
                    Console.Out.WriteLine(JsonSerializer.Serialize(view, Indented));
                }
                else
                {
                    Console.Out.WriteLine($"node id        {s.NodeId.ToHex()}");
                    Console.Out.WriteLine($"endpoint       {s.LocalEndPoint}" + (s.ExternalEndPoint != null ? $" (seen as {s.ExternalEndPoint})" : ""));
                    Console.Out.WriteLine($"routing table  {s.RoutingTableSize} nodes");
                    foreach (var b in s.Buckets) Console.Out.WriteLine($"  bucket {b.Index,3} (ids sharing {b.Index} leading bits)  {b.Count,3} nodes");
                    Console.Out.WriteLine($"records held   {s.RecordsHeld} signed records, {s.ProvidersHeld} provider records for {s.ProviderKeys} keys");
                    Console.Out.WriteLine($"datagrams      {s.DatagramsReceived} received, {s.DatagramsDropped} dropped");
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
