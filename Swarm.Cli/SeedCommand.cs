using System.CommandLine;
using Microsoft.Extensions.Logging;
using Swarm.Core.Exchange;
using Swarm.Node;

namespace Swarm.Cli;

internal static class SeedCommand
{
    public static Command Create()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "The local file to ingest and serve." };
        var dataDir = CommonOptions.DataDir();
        var listen = CommonOptions.Listen("0.0.0.0:7400");
        var bootstrap = CommonOptions.Bootstrap();
        var uploadRate = CommonOptions.Rate("--upload-rate", "upload");
        var verbose = CommonOptions.Verbose();
        var command = new Command("seed", "Ingest a file (hash and sign its pieces), print its swarm:// id on stdout, announce it in the DHT, then serve it until stopped (Ctrl-C or SIGTERM).")
        {
            file, dataDir, listen, bootstrap, uploadRate, verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            var progress = new ProgressLine("ingest");
            var logger = new StderrLogger(parse.GetValue(verbose) ? LogLevel.Debug : LogLevel.Warning, progress);
            try
            {
                var source = parse.GetValue(file)!;
                if (!source.Exists) throw new FileNotFoundException($"file not found: {source.FullName}");
                var options = new EngineOptions { UploadRate = CommonOptions.ParseRate(parse.GetValue(uploadRate), "--upload-rate") };
                await using var node = await LocalNode.StartAsync(DataDirectory.Resolve(parse.GetValue(dataDir)), options, logger,
                    parse.GetValue(listen), parse.GetValue(bootstrap) ?? [], ct).ConfigureAwait(false);
                long total = source.Length;
                var content = await node.Store.IngestFileAsync(source.FullName, node.Key,
                    new Progress<long>(done => progress.Report(done, total)), ct).ConfigureAwait(false);
                progress.Report(total, total, force: true);
                progress.Finish();
                await node.ServeAsync(content, ct).ConfigureAwait(false);
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
                return Errors.Report("seed", e);
            }
        });
        return command;
    }
}
