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
        var id = new Argument<string>("ID") { Description = "What to fetch: swarm://<id> as printed by 'swarm seed'." };
        var output = new Option<FileInfo>("--output", "-o") { Description = "Where to write the file. It appears only once every byte is verified.", Required = true };
        var peers = CommonOptions.Peers();
        var bootstrap = CommonOptions.Bootstrap();
        var listen = CommonOptions.Listen("0.0.0.0:0");
        var dataDir = CommonOptions.DataDir();
        var downloadRate = CommonOptions.Rate("--download-rate", "download");
        var uploadRate = CommonOptions.Rate("--upload-rate", "upload");
        var stall = new Option<string>("--stall-timeout") { Description = "Give up when nothing is verified for this long (e.g. 30s, 2m).", DefaultValueFactory = _ => "60s" };
        var linger = new Option<string?>("--linger") { Description = "Keep serving the content this long after the file is written (e.g. 30s, 10m), so others can fetch from this node." };
        var verbose = CommonOptions.Verbose();
        var command = new Command("get", "Fetch content through the swarm (providers from the DHT, or --peer), verify every piece, and write it to --output. Resumes an interrupted fetch without refetching verified pieces.")
        {
            id, output, peers, bootstrap, listen, dataDir, downloadRate, uploadRate, stall, linger, verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            var progress = new ProgressLine("get");
            var logger = new StderrLogger(parse.GetValue(verbose) ? LogLevel.Debug : LogLevel.Warning, progress);
            try
            {
                if (!ContentId.TryParse(parse.GetValue(id), out var contentId))
                    throw new UsageException($"'{parse.GetValue(id)}' is not a content id: expected swarm:// followed by 64 hex digits, as printed by 'swarm seed'");
                var peerList = parse.GetValue(peers) ?? [];
                var bootstrapList = parse.GetValue(bootstrap) ?? [];
                var options = new EngineOptions
                {
                    DownloadRate = CommonOptions.ParseRate(parse.GetValue(downloadRate), "--download-rate"),
                    UploadRate = CommonOptions.ParseRate(parse.GetValue(uploadRate), "--upload-rate"),
                    StallTimeout = Durations.Parse(parse.GetValue(stall)!, "--stall-timeout"),
                };
                var lingerFor = parse.GetValue(linger) is { } l ? Durations.Parse(l, "--linger") : TimeSpan.Zero;
                string path = parse.GetValue(output)!.FullName;
                await using var node = await LocalNode.StartAsync(DataDirectory.Resolve(parse.GetValue(dataDir)), options, logger,
                    parse.GetValue(listen), bootstrapList, ct).ConfigureAwait(false);
                long already;
                using (var existing = node.Store.TryOpen(contentId)) already = existing?.VerifiedBytes ?? 0;
                bool canDiscover = node.Dht is { } dht && dht.GetStats().RoutingTableSize > 0;
                if (peerList.Length == 0 && !canDiscover && already == 0)
                    throw new UsageException("no way to find peers: give --bootstrap IP:PORT (a DHT node) or --peer IP:PORT (a node serving this content)");
                var clock = Stopwatch.StartNew();
                var content = await node.Engine.DownloadAsync(contentId, peerList,
                    new Progress<TransferProgress>(p => progress.Report(p.VerifiedBytes, p.TotalBytes, p.Peers)), ct,
                    canDiscover ? node.Discovery : null).ConfigureAwait(false);
                content.Export(path);
                progress.Report(content.Layout.Length, content.Layout.Length, force: true);
                progress.Finish();
                var swarm = node.Engine.Find(contentId);
                long fromPeers = swarm?.BytesFromPeers ?? 0;
                double seconds = Math.Max(clock.Elapsed.TotalSeconds, 0.001);
                Console.Error.WriteLine($"swarm: {path}: {Units.Bytes(content.Layout.Length)} verified ({fromPeers} bytes from peers, {already} bytes already local) in {seconds:0.00} s, {ByteRate.Format(content.Layout.Length / seconds)}");
                if (lingerFor > TimeSpan.Zero)
                {
                    Console.Error.WriteLine($"swarm: serving {contentId} on {node.EndPoint} for {ProgressLine.FormatDuration(lingerFor)}; Ctrl-C to stop");
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
                return Errors.Report("get", e);
            }
        });
        return command;
    }
}
