using Swarm.Core;
using System.CommandLine;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Swarm.Core.Content;
using Swarm.Core.Exchange;
using Swarm.Node;

namespace Swarm.Cli;

internal static class GetCommand
{
    public static Command Create()
    {
        var id = new Argument<string>("ID") { Description = "What to fetch: swarm://<id> as printed by 'swarm seed', or an http(s) URL (through the swarm, falling back to the origin)." };
        var tag = CommonOptions.Tag();
        var filters = CommonOptions.Filters();
        var headers = CommonOptions.Headers();
        var noBackToSource = new Option<bool>("--no-back-to-source") { Description = "For a URL: fail instead of fetching from the origin when the swarm cannot serve." };
        var digest = new Option<string?>("--digest") { Description = "sha256:HEX — check the whole file against this digest before it appears at --output." };
        var output = new Option<FileInfo>("--output", "-o") { Description = "Where to write the file. It appears only once every byte is verified; a FIFO or character device is written through, a symbolic link's target is replaced.", Required = true };
        var peers = CommonOptions.Peers();
        var bootstrap = CommonOptions.Bootstrap();
        var listen = CommonOptions.Listen("0.0.0.0:0");
        var dataDir = CommonOptions.DataDir();
        var downloadRate = CommonOptions.Rate("--download-rate", "download");
        var uploadRate = CommonOptions.Rate("--upload-rate", "upload");
        var stall = new Option<string>("--stall-timeout") { Description = "Give up when nothing is verified for this long (e.g. 30s, 2m); until then, bootstrap nodes that do not answer are tried again.", DefaultValueFactory = _ => "60s" };
        var linger = new Option<string?>("--linger") { Description = "Keep serving the content this long after the file is written (e.g. 30s, 10m), so others can fetch from this node." };
        var verbose = CommonOptions.Verbose();
        var swarmKey = CommonOptions.SwarmKey();
        var encryption = CommonOptions.PeerEncryption();
        var otlp = CommonOptions.OtlpEndpoint();
        var trusted = new Option<string?>("--trusted-publishers")
        {
            Description = "For a URL: node ids (or key files) of seed hosts whose pointers are used without asking the origin; when set, only theirs " +
                "(default: $SWARM_TRUSTED_PUBLISHERS, else \"trusted-publishers\" in swarm.json). A running node uses its own setting.",
        };
        var command = new Command("get", "Fetch content through the swarm (providers from the DHT, or --peer), verify every piece, and write it to --output. Resumes an interrupted fetch without refetching verified pieces.")
        {
            id, output, peers, bootstrap, listen, dataDir, downloadRate, uploadRate, stall, linger, tag, filters, headers, noBackToSource, digest, trusted, swarmKey, encryption, otlp, verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            var progress = new ProgressLine("get");
            var logger = new StderrLogger(parse.GetValue(verbose) ? LogLevel.Debug : LogLevel.Warning, progress);
            // What this command prints about the request (progress lines, errors from deep down) shows no header value or signature.
            var redactor = new Swarm.Core.Sources.SecretRedactor(parse.GetValue(id) ?? "", parse.GetValue(filters) ?? [], parse.GetValue(headers) ?? []);
            try
            {
                var url = CommonOptions.AsUrl(parse.GetValue(id)!);
                if (url == null && !ContentId.TryParse(parse.GetValue(id), out _))
                    throw new UsageException($"'{parse.GetValue(id)}' is not a content id or URL: expected swarm:// followed by 64 hex digits (as printed by 'swarm seed') or an http(s) URL");
                var options = new EngineOptions
                {
                    DownloadRate = CommonOptions.ParseRate(parse.GetValue(downloadRate), "--download-rate"),
                    UploadRate = CommonOptions.ParseRate(parse.GetValue(uploadRate), "--upload-rate"),
                    StallTimeout = Durations.Parse(parse.GetValue(stall)!, "--stall-timeout"),
                };
                var lingerFor = parse.GetValue(linger) is { } l ? Durations.Parse(l, "--linger") : TimeSpan.Zero;
                string path = parse.GetValue(output)!.FullName;
                // Decided now, so that an output swarm must not write (a directory, a socket) costs no transfer.
                var target = Swarm.Core.Storage.OutputTarget.Inspect(path);
                // The same request whoever runs it: the node, or this process.
                var request = new TaskRequest
                {
                    Source = parse.GetValue(id)!, Output = path, Tag = parse.GetValue(tag), Filters = parse.GetValue(filters) ?? [],
                    Headers = parse.GetValue(headers) ?? [], Digest = parse.GetValue(digest), NoBackToSource = parse.GetValue(noBackToSource),
                    Peers = [.. (parse.GetValue(peers) ?? []).Select(p => p.ToString())],
                };
                TaskRunner.Validate(request);
                string dir = DataDirectory.Resolve(parse.GetValue(dataDir));
                using (var client = await NodeClient.TryConnectAsync(dir, ct).ConfigureAwait(false))
                {
                    if (client != null)
                    {
                        if (!OperatingSystem.IsLinux()) return await RemoteTask.RunAsync("get", client, request, progress, ct).ConfigureAwait(false);
                        // The output is opened here and the open file handed to the node: it is written with this user's rights and
                        // lands where this process sees it, whatever the node's user and mount namespace (a service's PrivateTmp).
                        using var output = await Swarm.Core.Storage.OutputFile.OpenAsync(target, line => progress.WriteLine($"swarm: get: {line}"), ct).ConfigureAwait(false);
                        string token = await client.HandOverAsync(output.Handle, ct).ConfigureAwait(false);
                        output.HandedOver();
                        return await RemoteTask.RunAsync("get", client, request with { OutputToken = token }, progress, ct, output).ConfigureAwait(false);
                    }
                }
                var trustedPublishers = url == null ? new HashSet<Swarm.Core.Content.Hash256>()
                    : NodeConfig.LoadOne(dir, "trusted-publishers", parse.GetValue(trusted), TrustedPublishers.Parse);
                var security = PeerSecurity.Load(dir, parse.GetValue(swarmKey), parse.GetValue(encryption));
                using var tracing = CommonOptions.StartTracing(dir, parse.GetValue(otlp)); // disposed after the node: the spans are sent before exit
                await using var node = await LocalNode.StartAsync(dir, security.Apply(options), logger,
                    parse.GetValue(listen), parse.GetValue(bootstrap) ?? BootstrapList.Empty, ct, security.Apply(new Swarm.Core.Dht.DhtOptions())).ConfigureAwait(false);
                var clock = Stopwatch.StartNew();
                var outcome = await new TaskRunner(node, new TaskRunnerContext { TrustedPublishers = trustedPublishers })
                    .RunAsync(request, new ProgressObserver(progress, redactor), ct).ConfigureAwait(false);
                var content = outcome.Content!;
                progress.Report(content.Layout.Length, content.Layout.Length, force: true);
                progress.Finish();
                var swarm = outcome.SwarmId is { } swarmId ? node.Engine.Find(swarmId) : null;
                long fromPeers = swarm?.BytesFromPeers ?? 0;
                double seconds = Math.Max(clock.Elapsed.TotalSeconds, 0.001);
                long fromOrigin = outcome.FromOrigin ? content.Layout.Length : 0;
                Console.Error.WriteLine($"swarm: {path}: {Units.Bytes(content.Layout.Length)} verified ({fromPeers} bytes from peers, {fromOrigin} bytes from the origin, {outcome.AlreadyLocal} bytes already local) in {seconds:0.00} s, {ByteRate.Format(content.Layout.Length / seconds)}");
                // Do not strand peers that are fetching from us: keep serving while any is still interested (bounded), and
                // after an origin ingest give the nodes that waited for this node's pointer a moment to connect.
                await FinishUploadsAsync(swarm, outcome.FromOrigin && outcome.Contenders > 0 ? TimeSpan.FromSeconds(15) : TimeSpan.Zero, TimeSpan.FromMinutes(2), ct).ConfigureAwait(false);
                if (lingerFor > TimeSpan.Zero)
                {
                    Console.Error.WriteLine($"swarm: serving {outcome.SwarmId?.ToUri() ?? outcome.Result} on {node.EndPoint} for {ProgressLine.FormatDuration(lingerFor)}; Ctrl-C to stop");
                    try
                    {
                        await Task.Delay(lingerFor, ct).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) { }
                    Console.Error.WriteLine($"swarm: uploaded {swarm?.BytesUploaded ?? 0} bytes to peers");
                }
                return ExitCodes.Ok;
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                progress.Finish();
                Console.Error.WriteLine("swarm: get: interrupted; verified pieces are kept, run the same command to resume");
                return ExitCodes.Interrupted;
            }
            catch (Exception e)
            {
                progress.Finish();
                return Errors.Report("get", e, redactor.Scrub);
            }
        });
        return command;
    }

    private static async Task FinishUploadsAsync(ContentSwarm? swarm, TimeSpan atLeast, TimeSpan atMost, CancellationToken cancellationToken)
    {
        if (swarm == null) return;
        var clock = Stopwatch.StartNew();
        long quietSince = -1000; // nobody interested at the start: no need to wait
        try
        {
            while (clock.Elapsed < atMost)
            {
                if (swarm.HasInterestedPeers) quietSince = clock.ElapsedMilliseconds;
                else if (clock.Elapsed >= atLeast && clock.ElapsedMilliseconds - quietSince >= 1000) return;
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) { }
    }
}
