using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Swarm.Core.Identity;
using Swarm.Core.Wire;

namespace Swarm.Benchmarks;

/// <summary>
/// <c>transport [MiB]</c>: wall time and CPU seconds of this process for MiB of 128 KiB block frames between two
/// <see cref="FrameConnection"/>s over loopback, plaintext and encrypted, alternating three times each (both ends in
/// this process, so the CPU seconds are the whole cost of the transport).
/// </summary>
internal static class TransportProbe
{
    public static async Task<int> RunAsync(string[] args)
    {
        long total = (args.Length > 0 ? long.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 512) << 20;
        Console.WriteLine($"{total >> 20} MiB of 128 KiB block frames over loopback, both ends in this process");
        foreach (bool encrypt in new[] { false, true, false, true, false, true })
        {
            var (seconds, cpu) = await OnceAsync(encrypt, total).ConfigureAwait(false);
            Console.WriteLine($"{(encrypt ? "encrypted" : "plaintext"),-10} {total / seconds / 1e6,8:0} MB/s  {cpu,6:0.00} CPU s");
        }
        return 0;
    }

    private static async Task<(double Seconds, double Cpu)> OnceAsync(bool encrypt, long total)
    {
        using var ka = NodeKey.Generate();
        using var kb = NodeKey.Generate();
        using var sa = new TransportSecurity(ka, null, encrypt);
        using var sb = new TransportSecurity(kb, null, encrypt);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var accepting = Task.Run(async () => await FrameConnection.AcceptAsync(await listener.AcceptAsync().ConfigureAwait(false), sb, CancellationToken.None).ConfigureAwait(false));
        await using var sender = await FrameConnection.ConnectAsync((IPEndPoint)listener.LocalEndPoint!, TimeSpan.FromSeconds(10), CancellationToken.None, sa).ConfigureAwait(false);
        await using var receiver = await accepting.ConfigureAwait(false);
        long got = 0;
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var payload = new byte[128 * 1024];
        using var stop = new CancellationTokenSource();
        var receiving = receiver.ReceiveAsync(f =>
        {
            if (Interlocked.Add(ref got, f.Body.Length) >= total) done.TrySetResult();
            return ValueTask.CompletedTask;
        }, stop.Token);
        var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        for (long i = 0; i < total / payload.Length; i++)
            await sender.SendBlockAsync(new BlockHeader((int)(i / 8), (int)(i % 8) * payload.Length), payload.Length, payload, static (p, s) => p.CopyTo(s)).ConfigureAwait(false);
        await done.Task.ConfigureAwait(false);
        double seconds = clock.Elapsed.TotalSeconds;
        double cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
        await stop.CancelAsync().ConfigureAwait(false);
        try { await receiving.ConfigureAwait(false); } catch (OperationCanceledException) { }
        return (seconds, cpu);
    }
}
