using Swarm.Core.Sources;
using Swarm.Core;
using System.CommandLine;
using Microsoft.Extensions.Logging;
using Swarm.Core.Exchange;
using Swarm.Node;

namespace Swarm.Cli;

internal static class SeedCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("SOURCE") { Description = "What to ingest and serve: a local file, an http(s) URL (fetched from its origin once), or an image, oci://REGISTRY/REPO:TAG or oci://REGISTRY/REPO@sha256:… (every blob of it)." };
        var platform = new Option<string?>("--platform") { Description = "For oci://: only this platform of a multi-platform image, os/arch[/variant] (default: all platforms)." };
        var registryConfig = new Option<string?>("--registry-config") { Description = "For oci://: JSON file of registry credentials (default registries.json in the data directory)." };
        var tag = CommonOptions.Tag();
        var filters = CommonOptions.Filters();
        var headers = CommonOptions.Headers();
        var dataDir = CommonOptions.DataDir();
        var listen = CommonOptions.Listen("0.0.0.0:7400");
        var bootstrap = CommonOptions.Bootstrap();
        var uploadRate = CommonOptions.Rate("--upload-rate", "upload");
        var verbose = CommonOptions.Verbose();
        var swarmKey = CommonOptions.SwarmKey();
        var encryption = CommonOptions.PeerEncryption();
        var otlp = CommonOptions.OtlpEndpoint();
        var command = new Command("seed", "Ingest a file or a URL (hash and sign its pieces; for a URL also publish a pointer from the URL to the content in the DHT), print its swarm:// id on stdout, announce it in the DHT, then serve it until stopped (Ctrl-C or SIGTERM).")
        {
            file, dataDir, listen, bootstrap, uploadRate, tag, filters, headers, platform, registryConfig, swarmKey, encryption, otlp, verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            var progress = new ProgressLine("ingest");
            var logger = new StderrLogger(parse.GetValue(verbose) ? LogLevel.Debug : LogLevel.Warning, progress);
            // What this command prints about the request shows no header value or signature.
            var redactor = new Swarm.Core.Sources.SecretRedactor(parse.GetValue(file) ?? "", parse.GetValue(filters) ?? [], parse.GetValue(headers) ?? []);
            try
            {
                string what = parse.GetValue(file)!;
                bool image = what.StartsWith("oci://", StringComparison.OrdinalIgnoreCase);
                var url = image ? null : CommonOptions.AsUrl(what);
                var source = new FileInfo(what);
                if (!image && url == null && !source.Exists) throw new FileNotFoundException($"file not found: {source.FullName}");
                // The same request whoever runs it: the node, or this process.
                var request = new TaskRequest
                {
                    Kind = TaskKind.Seed, Source = image || url != null ? what : source.FullName, Tag = parse.GetValue(tag), Filters = parse.GetValue(filters) ?? [],
                    Headers = parse.GetValue(headers) ?? [], Platform = parse.GetValue(platform),
                };
                TaskRunner.Validate(request);
                string dir = DataDirectory.Resolve(parse.GetValue(dataDir));
                using (var client = await NodeClient.TryConnectAsync(dir, ct).ConfigureAwait(false))
                {
                    if (client != null)
                    {
                        if (parse.GetValue(registryConfig) != null) Console.Error.WriteLine("swarm: seed: --registry-config is ignored: the running node uses its own");
                        return await RemoteTask.RunAsync("seed", client, request, progress, ct).ConfigureAwait(false);
                    }
                }
                var options = new EngineOptions { UploadRate = CommonOptions.ParseRate(parse.GetValue(uploadRate), "--upload-rate") };
                using var registries = image ? Swarm.Node.Mirror.Registries.Load(parse.GetValue(registryConfig) is { } rc ? Path.GetFullPath(rc) : Path.Combine(dir, "registries.json")) : null;
                var security = PeerSecurity.Load(dir, parse.GetValue(swarmKey), parse.GetValue(encryption));
                using var tracing = CommonOptions.StartTracing(dir, parse.GetValue(otlp));
                await using var node = await LocalNode.StartAsync(dir, security.Apply(options), logger,
                    parse.GetValue(listen), parse.GetValue(bootstrap) ?? BootstrapList.Empty, ct, security.Apply(new Swarm.Core.Dht.DhtOptions())).ConfigureAwait(false);
                using var oci = image ? new Swarm.Node.Mirror.OciContent(node, Path.Combine(dir, "mirror"), logger) : null;
                var outcome = await new TaskRunner(node, new TaskRunnerContext { Oci = oci, Registries = registries })
                    .RunAsync(request, new ProgressObserver(progress, redactor), ct).ConfigureAwait(false);
                progress.Report(outcome.Bytes, outcome.Bytes, force: true);
                progress.Finish();
                Console.Out.WriteLine(outcome.Result);
                Console.Out.Flush();
                if (outcome.Content is { } content)
                    Console.Error.WriteLine($"swarm: serving {outcome.Result} ({Units.Bytes(content.Layout.Length)}, {content.Layout.PieceCount} pieces of {Units.Bytes(content.Layout.PieceSize)}) on {node.EndPoint} (TCP and UDP); Ctrl-C to stop");
                else
                    Console.Error.WriteLine($"swarm: serving {redactor.Source}: {outcome.Summary}, {Units.Bytes(outcome.Bytes)} ({Units.Bytes(outcome.FromUpstream)} read from the registry) on {node.EndPoint} (TCP and UDP); Ctrl-C to stop");
                try
                {
                    await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    Console.Error.WriteLine("swarm: stopping");
                }
                return ExitCodes.Ok;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                progress.Finish();
                Console.Error.WriteLine("swarm: seed: interrupted");
                return ExitCodes.Interrupted;
            }
            catch (Exception e)
            {
                progress.Finish();
                return Errors.Report("seed", e, redactor.Scrub);
            }
        });
        return command;
    }
}
