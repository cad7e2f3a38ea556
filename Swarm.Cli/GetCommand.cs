using System.CommandLine;
using System.Diagnostics;
using System.Net;
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
        var peers = new Option<IPEndPoint[]>("--peer")
        {
            Description = "A peer to fetch from, IP:PORT (repeatable).",
            AllowMultipleArgumentsPerToken = false,
            CustomParser = r => [.. r.Tokens.Select(t => CommonOptions.ParseEndPoint(t.Value, r))],
        };
        var dataDir = CommonOptions.DataDir();
        var downloadRate = CommonOptions.Rate("--download-rate", "download");
        var stall = new Option<string>("--stall-timeout") { Description = "Give up when nothing is verified for this long (e.g. 30s, 2m).", DefaultValueFactory = _ => "60s" };
        var verbose = CommonOptions.Verbose();
        var command = new Command("get", "Fetch content from peers, verify every piece, and write it to --output. Resumes an interrupted fetch without refetching verified pieces.")
        {
            id, output, peers, dataDir, downloadRate, stall, verbose,
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
                var options = new EngineOptions
                {
                    DownloadRate = CommonOptions.ParseRate(parse.GetValue(downloadRate), "--download-rate"),
                    StallTimeout = Durations.Parse(parse.GetValue(stall)!, "--stall-timeout"),
                };
                string path = parse.GetValue(output)!.FullName;
                await using var node = LocalNode.Open(DataDirectory.Resolve(parse.GetValue(dataDir)), options, logger, listen: null);
                long already;
                using (var existing = node.Store.TryOpen(contentId)) already = existing?.VerifiedBytes ?? 0;
                if (peerList.Length == 0 && already == 0)
                    throw new UsageException("no --peer given: name at least one peer that serves this content, e.g. --peer 127.0.0.1:7400");
                var clock = Stopwatch.StartNew();
                var content = await node.Engine.DownloadAsync(contentId, peerList,
                    new Progress<TransferProgress>(p => progress.Report(p.VerifiedBytes, p.TotalBytes, p.Peers)), ct).ConfigureAwait(false);
                content.Export(path);
                progress.Report(content.Layout.Length, content.Layout.Length, force: true);
                progress.Finish();
                long fromPeers = node.Engine.Find(contentId)?.BytesFromPeers ?? 0;
                double seconds = Math.Max(clock.Elapsed.TotalSeconds, 0.001);
                Console.Error.WriteLine($"swarm: {path}: {Units.Bytes(content.Layout.Length)} verified ({fromPeers} bytes from peers, {already} bytes already local) in {seconds:0.00} s, {ByteRate.Format(content.Layout.Length / seconds)}");
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
