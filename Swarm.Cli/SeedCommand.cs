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
        var command = new Command("seed", "Ingest a file or a URL (hash and sign its pieces; for a URL also publish a pointer from the URL to the content in the DHT), print its swarm:// id on stdout, announce it in the DHT, then serve it until stopped (Ctrl-C or SIGTERM).")
        {
            file, dataDir, listen, bootstrap, uploadRate, tag, filters, headers, platform, registryConfig, verbose,
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
                if (what.StartsWith("oci://", StringComparison.OrdinalIgnoreCase))
                    return await SeedImageAsync(parse, what, parse.GetValue(platform), parse.GetValue(registryConfig), dataDir, listen, bootstrap, uploadRate, progress, logger, ct).ConfigureAwait(false);
                var url = CommonOptions.AsUrl(what);
                var source = new FileInfo(what);
                if (url == null && !source.Exists) throw new FileNotFoundException($"file not found: {source.FullName}");
                var headerList = CommonOptions.ParseHeaders(parse.GetValue(headers));
                string dir = DataDirectory.Resolve(parse.GetValue(dataDir));
                using (var client = await NodeClient.TryConnectAsync(dir, ct).ConfigureAwait(false))
                {
                    if (client != null)
                        return await RemoteTask.RunAsync("seed", client, new TaskRequest
                        {
                            Kind = "seed", Source = url != null ? what : source.FullName, Tag = parse.GetValue(tag), Filters = parse.GetValue(filters) ?? [],
                            Headers = parse.GetValue(headers) ?? [],
                        }, progress, ct).ConfigureAwait(false);
                }
                var options = new EngineOptions { UploadRate = CommonOptions.ParseRate(parse.GetValue(uploadRate), "--upload-rate") };
                await using var node = await LocalNode.StartAsync(dir, options, logger,
                    parse.GetValue(listen), parse.GetValue(bootstrap) ?? [], ct).ConfigureAwait(false);
                Swarm.Core.Storage.StoredContent content;
                Swarm.Core.Sources.OriginValidators? validators = null;
                if (url != null)
                {
                    using var origin = new Swarm.Core.Sources.OriginClient(headerList, filters: parse.GetValue(filters) ?? []);
                    var liveKey = Swarm.Core.Sources.TaskKey.For(url, parse.GetValue(tag), parse.GetValue(filters) ?? []);
                    // Published at once: gets that start during the ingest fetch pieces from this node as it reads them.
                    var ingested = await OriginIngest.RunAsync(node, url, liveKey, origin, new InlineProgress<(long Done, long Total)>(p => progress.Report(p.Done, p.Total)),
                        (live, v) => TaskPointers.PublishAsync(node, liveKey, live, v, ct, live: true), ct).ConfigureAwait(false);
                    content = ingested.Content;
                    validators = ingested.Validators;
                }
                else
                {
                    long total = source.Length;
                    content = await Ingest.FileAsync(node.Store, source.FullName, node.Key,
                        new InlineProgress<long>(done => progress.Report(done, total)), ct).ConfigureAwait(false);
                }
                progress.Report(content.Layout.Length, content.Layout.Length, force: true);
                progress.Finish();
                await node.ServeAsync(content, ct).ConfigureAwait(false);
                if (url != null && validators != null)
                {
                    var taskKey = Swarm.Core.Sources.TaskKey.For(url, parse.GetValue(tag), parse.GetValue(filters) ?? []);
                    int stored = await TaskPointers.PublishAsync(node, taskKey, content.Id, validators, ct).ConfigureAwait(false);
                    if (stored == 0) logger.LogWarning("no DHT node stored the pointer for {Url} (no --bootstrap?); 'swarm get {Url}' elsewhere will go to the origin", redactor.Source, redactor.Source);
                }
                Console.Out.WriteLine(content.Id.ToUri());
                Console.Out.Flush();
                Console.Error.WriteLine($"swarm: serving {content.Id.ToUri()} ({Units.Bytes(content.Layout.Length)}, {content.Layout.PieceCount} pieces of {Units.Bytes(content.Layout.PieceSize)}) on {node.EndPoint} (TCP and UDP); Ctrl-C to stop");
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

    /// <summary><c>swarm seed oci://…</c>: preheat every blob of an image into the swarm, then serve them.</summary>
    private static async Task<int> SeedImageAsync(System.CommandLine.ParseResult parse, string what, string? platformText, string? registryConfig,
        Option<string?> dataDir, Option<System.Net.IPEndPoint> listen, Option<System.Net.IPEndPoint[]> bootstrap, Option<string?> uploadRate,
        ProgressLine progress, ILogger logger, CancellationToken ct)
    {
        var reference = Swarm.Core.Sources.OciReference.Parse(what);
        var platform = platformText is { } p ? Swarm.Core.Sources.OciPlatform.Parse(p) : null;
        string dir = DataDirectory.Resolve(parse.GetValue(dataDir));
        using (var client = await NodeClient.TryConnectAsync(dir, ct).ConfigureAwait(false))
        {
            if (client != null)
            {
                if (registryConfig != null) Console.Error.WriteLine("swarm: seed: --registry-config is ignored: the running node uses its own");
                return await RemoteTask.RunAsync("seed", client, new TaskRequest { Kind = "seed", Source = what, Platform = platformText }, progress, ct).ConfigureAwait(false);
            }
        }
        using var registries = Swarm.Node.Mirror.Registries.Load(registryConfig != null ? Path.GetFullPath(registryConfig) : Path.Combine(dir, "registries.json"));
        var options = new EngineOptions { UploadRate = CommonOptions.ParseRate(parse.GetValue(uploadRate), "--upload-rate") };
        await using var node = await LocalNode.StartAsync(dir, options, logger, parse.GetValue(listen), parse.GetValue(bootstrap) ?? [], ct).ConfigureAwait(false);
        using var oci = new Swarm.Node.Mirror.OciContent(node, Path.Combine(dir, "mirror"), logger);
        var result = await Swarm.Node.Mirror.OciPreheat.RunAsync(node, oci, registries, reference, platform,
            new InlineProgress<(long Done, long Total)>(x => progress.Report(x.Done, x.Total)), line => progress.WriteLine("swarm: " + line), ct).ConfigureAwait(false);
        progress.Report(result.Bytes, result.Bytes, force: true);
        progress.Finish();
        Console.Out.WriteLine(result.Digest);
        Console.Out.Flush();
        Console.Error.WriteLine($"swarm: serving {reference.Registry}/{reference.Repository}@{result.Digest}: {result.Manifests} manifest(s), {result.Blobs} blob(s), " +
            $"{Units.Bytes(result.Bytes)} ({Units.Bytes(result.FromUpstream)} read from the registry) on {node.EndPoint} (TCP and UDP); Ctrl-C to stop");
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
}
