using System.Diagnostics;
using Swarm.Core.Exchange;
using Swarm.Node;

namespace Swarm.Cli;

/// <summary>Runs a get or seed on the node that runs with the same data directory, showing its progress here.</summary>
internal static class RemoteTask
{
    /// <summary>
    /// <paramref name="output"/>: the get's output, opened here and handed to the node (the request names it by
    /// <see cref="TaskRequest.OutputToken"/>); given its name here once the node has written it.
    /// </summary>
    public static async Task<int> RunAsync(string command, NodeClient client, TaskRequest request, ProgressLine progress, CancellationToken ct,
        Swarm.Core.Storage.OutputFile? output = null)
    {
        var clock = Stopwatch.StartNew();
        Console.Error.WriteLine($"swarm: {command}: handing this to the node running on {client.SocketPath}");
        TaskInfo task;
        try
        {
            task = await client.SendAsync<TaskInfo>(HttpMethod.Post, "v1/tasks", request, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Errors.Report(command, e);
        }
        try
        {
            while (true)
            {
                await Task.Delay(200, ct).ConfigureAwait(false);
                TaskInfo now;
                try
                {
                    now = await client.GetAsync<TaskInfo>($"v1/tasks/{task.Id}", ct).ConfigureAwait(false);
                }
                catch (HttpRequestException)
                {
                    progress.Finish();
                    Console.Error.WriteLine(output == null
                        ? $"swarm: {command}: the node stopped while task {task.Id} ran; verified pieces are kept and the node resumes the task when it starts again ('swarm ls' shows it)"
                        : $"swarm: {command}: the node stopped while task {task.Id} ran; verified pieces are kept and the node resumes the task when it starts again, " +
                          $"into its store only: run the same get again to write {request.Output} (a node writes only the files a running get hands it)");
                    return ExitCodes.Unavailable;
                }
                if (now.Total > 0) progress.Report(now.Verified, now.Total, now.Peers);
                if (now.State == TaskState.Running) continue;
                progress.Finish();
                if (now.State == TaskState.Done)
                {
                    try
                    {
                        output?.Commit(now.Total);
                    }
                    catch (IOException e)
                    {
                        return Errors.Report(command, e);
                    }
                    double seconds = Math.Max(clock.Elapsed.TotalSeconds, 0.001);
                    if (request.Kind == TaskKind.Seed)
                    {
                        Console.Out.WriteLine(now.Result ?? now.ContentId);
                        Console.Error.WriteLine($"swarm: the node serves {now.Result ?? now.ContentId} ({Units.Bytes(now.Total)})");
                    }
                    else
                    {
                        Console.Error.WriteLine($"swarm: {request.Output ?? now.ContentId}: {Units.Bytes(now.Total)} verified ({now.FromPeers} bytes from peers, {now.FromOrigin} bytes from the origin) in {seconds:0.00} s, {ByteRate.Format(now.Total / seconds)}");
                    }
                    return ExitCodes.Ok;
                }
                Console.Error.WriteLine($"swarm: {command}: {now.Error}");
                return ExitCodes.For(now.ErrorKind ?? FailureKind.Local);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            progress.Finish();
            // Ctrl-C here stops the task on the node too; what it verified stays in the store.
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await client.SendAsync(HttpMethod.Delete, $"v1/tasks/{task.Id}", timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException or UsageException) { }
            Console.Error.WriteLine($"swarm: {command}: interrupted; the node keeps the verified pieces, run the same command to resume");
            return ExitCodes.Interrupted;
        }
    }
}
