using System.CommandLine;
using Microsoft.Extensions.Hosting;
using Swarm.Node;

namespace Swarm.Cli;

internal static class NodeCommand
{
    public static Command Create()
    {
        var dataDir = CommonOptions.DataDir();
        var command = new Command("node",
            "Run the node service: join the DHT, serve and announce the content in the data directory, run the tasks that 'swarm get' and " +
            "'swarm seed' hand it, keep the store under its quota, expose /metrics and /healthz, until SIGTERM or Ctrl-C. " +
            "Each setting comes from its flag, else the environment variable SWARM_<NAME>, else swarm.json in the data directory, else its default.")
        {
            dataDir,
        };
        var settings = new List<(string Name, Option<string?> Option)>();
        foreach (var (name, env, def, help) in NodeConfig.Settings)
        {
            var option = new Option<string?>("--" + name) { Description = $"{char.ToUpperInvariant(help[0])}{help[1..]}. Env {env}; default {(def.Length == 0 ? "none" : def)}." };
            if (name == "bootstrap") option.AllowMultipleArgumentsPerToken = false;
            settings.Add((name, option));
            command.Options.Add(option);
        }
        var verbose = CommonOptions.Verbose();
        command.Options.Add(verbose);
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                var flags = new Dictionary<string, string?>();
                foreach (var (name, option) in settings)
                {
                    var result = parse.GetResult(option);
                    if (result == null || result.Implicit) continue;
                    flags[name] = name == "bootstrap" ? string.Join(",", result.Tokens.Select(t => t.Value)) : parse.GetValue(option);
                }
                if (parse.GetValue(verbose)) flags["log-level"] = "debug";
                var config = NodeConfig.Load(DataDirectory.Resolve(parse.GetValue(dataDir)), flags);
                Swarm.Node.Mirror.Registries.Load(config.RegistryConfig).Dispose(); // checked now: a bad file is a configuration error
                if (config.Metrics != null && config.MetricsIsDefault && !PortFree(config.Metrics))
                {
                    Console.Error.WriteLine($"swarm: node: the default metrics address {config.Metrics} is taken (another node on this host?); running without metrics. Give --metrics IP:PORT to choose one.");
                    config = config with { Metrics = null };
                }
                if (config.Mirror != null && config.MirrorIsDefault && !PortFree(config.Mirror))
                {
                    Console.Error.WriteLine($"swarm: node: the default registry mirror address {config.Mirror} is taken (another node on this host?); running without the mirror. Give --mirror IP:PORT to choose one.");
                    config = config with { Mirror = null };
                }
                var app = NodeHost.Build(config);
                while (true)
                {
                    try
                    {
                        await app.StartAsync(CancellationToken.None).ConfigureAwait(false);
                        break;
                    }
                    catch (IOException e) when (TakenDefault(config, e) is { } which)
                    {
                        // Another node on this host took a default port between the check and the bind.
                        Console.Error.WriteLine($"swarm: node: the default {which} address is taken; running without it. Give --{which} IP:PORT to choose one.");
                        await app.DisposeAsync().ConfigureAwait(false);
                        config = which == "metrics" ? config with { Metrics = null } : config with { Mirror = null };
                        app = NodeHost.Build(config);
                    }
                }
                await using (app)
                    await app.WaitForShutdownAsync(ct).ConfigureAwait(false); // SIGTERM / Ctrl-C: graceful stop
                return ExitCodes.Ok;
            }
            catch (ConfigException e)
            {
                Console.Error.WriteLine($"swarm: node: bad configuration: {e.Message}");
                return ExitCodes.Usage;
            }
            catch (Exception e)
            {
                return Errors.Report("node", e);
            }
        });
        return command;
    }

    private static string? TakenDefault(NodeConfig config, IOException e)
    {
        if (config.Metrics != null && config.MetricsIsDefault && e.Message.Contains(config.Metrics.ToString(), StringComparison.Ordinal)) return "metrics";
        if (config.Mirror != null && config.MirrorIsDefault && e.Message.Contains(config.Mirror.ToString(), StringComparison.Ordinal)) return "mirror";
        return null;
    }

    private static bool PortFree(System.Net.IPEndPoint endPoint)
    {
        try
        {
            using var probe = new System.Net.Sockets.TcpListener(endPoint);
            probe.Start();
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }
}
