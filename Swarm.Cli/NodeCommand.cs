using System.CommandLine;
using Microsoft.Extensions.Logging;
using Swarm.Core.Exchange;
using Swarm.Node;

namespace Swarm.Cli;

internal static class NodeCommand
{
    public static Command Create()
    {
        var dataDir = CommonOptions.DataDir();
        var listen = CommonOptions.Listen("0.0.0.0:7400");
        var bootstrap = CommonOptions.Bootstrap();
        var uploadRate = CommonOptions.Rate("--upload-rate", "upload");
        var verbose = CommonOptions.Verbose();
        var command = new Command("node", "Run a long-lived node: join the DHT, keep the routing table, serve and announce all complete content in the data directory, until Ctrl-C or SIGTERM.")
        {
            dataDir, listen, bootstrap, uploadRate, verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            var logger = new StderrLogger(parse.GetValue(verbose) ? LogLevel.Debug : LogLevel.Information, null);
            try
            {
                var options = new EngineOptions { UploadRate = CommonOptions.ParseRate(parse.GetValue(uploadRate), "--upload-rate") };
                await using var node = await LocalNode.StartAsync(DataDirectory.Resolve(parse.GetValue(dataDir)), options, logger,
                    parse.GetValue(listen), parse.GetValue(bootstrap) ?? [], ct).ConfigureAwait(false);
                int served = 0;
                foreach (var id in node.Store.List())
                {
                    var content = node.Store.TryOpen(id);
                    if (content is not { IsComplete: true }) { content?.Dispose(); continue; }
                    await node.ServeAsync(content, ct).ConfigureAwait(false);
                    served++;
                }
                var stats = node.Dht!.GetStats();
                Console.Error.WriteLine($"swarm: node {node.Key.NodeId.ToHex()} listening on {node.EndPoint} (TCP and UDP); {stats.RoutingTableSize} DHT contacts; serving {served} item(s); Ctrl-C to stop");
                try
                {
                    while (true)
                    {
                        await Task.Delay(TimeSpan.FromMinutes(1), ct).ConfigureAwait(false);
                        stats = node.Dht.GetStats();
                        Console.Error.WriteLine($"swarm: {stats.RoutingTableSize} DHT contacts, {stats.ProvidersHeld} provider records and {stats.RecordsHeld} records held for others, {node.Engine.Swarms.Sum(s => s.PeerCount)} peer connections");
                    }
                }
                catch (OperationCanceledException)
                {
                    Console.Error.WriteLine("swarm: stopping");
                }
                return ExitCodes.Ok;
            }
            catch (Exception e)
            {
                return Errors.Report("node", e);
            }
        });
        return command;
    }
}
