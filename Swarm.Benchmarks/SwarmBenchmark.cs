using Swarm.Core.Sources;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Swarm.Core.Dht;
using Swarm.Core.Exchange;
using Swarm.Node;

namespace Swarm.Benchmarks;

/// <summary>
/// End-to-end swarm benchmark in one process: a seed and N nodes on loopback, every node limited to the same upload and
/// download rate, all started at once; nodes find each other through the DHT. Reports the last completion against the
/// Kumar–Ross minimum <c>max(S/u_seed, S/d, N·S/(u_seed + N·u))</c> and the seed's upload against the content size.
/// Run: <c>dotnet run -c Release --project Swarm.Benchmarks -- swarm [--size 64MiB] [--rate 16MiB/s] 4 8 12 16 32</c>.
/// With <c>SWARM_BENCH_TRACE=1</c> it also prints, once a second, every unfinished node's download state to stderr.
/// </summary>
internal static class SwarmBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        long size = 64L << 20;
        long rate = 16L << 20;
        var counts = new List<int>();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--size") size = ParseSize(args[++i]);
            else if (args[i] == "--rate") rate = Quantities.ParseRate(args[++i]);
            else counts.Add(int.Parse(args[i], CultureInfo.InvariantCulture));
        }
        if (counts.Count == 0) counts = [4, 8, 16, 32];
        Console.WriteLine($"content {size >> 20} MiB, every node {ByteRate.Format(rate)} up and down, {Environment.ProcessorCount} cores");
        Console.WriteLine("| nodes | bound s | first done s | last done s | last / bound | seed upload / size | CPU s |");
        Console.WriteLine("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (int n in counts) await RunOneAsync(n, size, rate).ConfigureAwait(false);
        return 0;
    }

    private static long ParseSize(string text)
    {
        string t = text.Trim();
        long unit = t.EndsWith("GiB", StringComparison.OrdinalIgnoreCase) ? 1L << 30 : t.EndsWith("MiB", StringComparison.OrdinalIgnoreCase) ? 1L << 20 : t.EndsWith("KiB", StringComparison.OrdinalIgnoreCase) ? 1L << 10 : 1;
        return long.Parse(unit == 1 ? t : t[..^3], CultureInfo.InvariantCulture) * unit;
    }

    private static async Task RunOneAsync(int n, long size, long rate)
    {
        string root = Path.Combine(Path.GetTempPath(), "swarm-bench-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4)));
        Directory.CreateDirectory(root);
        var nodes = new List<LocalNode>();
        try
        {
            string source = Path.Combine(root, "content.bin");
            await using (var fs = File.Create(source))
            {
                var buffer = new byte[1 << 20];
                for (long left = size; left > 0; left -= buffer.Length)
                {
                    RandomNumberGenerator.Fill(buffer);
                    await fs.WriteAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left))).ConfigureAwait(false);
                }
            }
            var options = new EngineOptions { UploadRate = rate, DownloadRate = rate, StallTimeout = TimeSpan.FromSeconds(120), LoopbackAsHosts = true };
            var dht = new DhtOptions { HoldingsUpdateDelay = TimeSpan.FromMilliseconds(200), LoopbackAsHosts = true };
            var loopback = new IPEndPoint(IPAddress.Loopback, 0);
            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(10));
            var seed = await LocalNode.StartAsync(Path.Combine(root, "seed"), options, NullLogger.Instance, loopback, [], cts.Token, dht).ConfigureAwait(false);
            nodes.Add(seed);
            var content = await Ingest.FileAsync(seed.Store, source, seed.Key, null, cts.Token).ConfigureAwait(false);
            var getters = new List<LocalNode>();
            for (int i = 0; i < n; i++)
            {
                var g = await LocalNode.StartAsync(Path.Combine(root, $"n{i}"), options, NullLogger.Instance, loopback, [seed.EndPoint!], cts.Token, dht).ConfigureAwait(false);
                getters.Add(g);
                nodes.Add(g);
            }
            await seed.ServeAsync(content, cts.Token).ConfigureAwait(false);

            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var clock = Stopwatch.StartNew();
            var done = new double[n];
            var trace = new List<string>();
            _ = Task.Run(async () =>
            {
                for (int t = 1; t <= 30 && !cts.IsCancellationRequested; t++)
                {
                    await Task.Delay(1000).ConfigureAwait(false);
                    for (int i = 0; i < n; i++)
                        if (done[i] == 0) lock (trace) trace.Add($"t={t} n{i}: {getters[i].Engine.Find(content.Id)?.Describe()}");
                    lock (trace) trace.Add($"t={t} seed: {seed.Engine.Find(content.Id)?.Describe()}");
                }
            });
            await Task.WhenAll(getters.Select(async (g, i) =>
            {
                await g.Engine.DownloadAsync(content.Id, [], null, cts.Token, g.Discovery).ConfigureAwait(false);
                done[i] = clock.Elapsed.TotalSeconds;
            })).ConfigureAwait(false);
            double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds;
            if (Environment.GetEnvironmentVariable("SWARM_BENCH_TRACE") != null)
                foreach (var line in trace) Console.Error.WriteLine(line);
            double bound = Math.Max(size / (double)rate, n * size / (double)(rate + n * rate));
            double seedShare = seed.Engine.Find(content.Id)!.BytesUploaded / (double)size;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {n} | {bound:0.00} | {done.Min():0.00} | {done.Max():0.00} | {done.Max() / bound:0.00} | {seedShare:0.00} | {cpuSeconds:0.0} |"));
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync().ConfigureAwait(false);
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }
}
