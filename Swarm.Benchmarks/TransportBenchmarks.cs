using System.Net;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using Swarm.Core.Identity;
using Swarm.Core.Wire;

namespace Swarm.Benchmarks;

/// <summary>
/// What encryption costs on the wire path alone (issue #14): 256 MiB of 128 KiB block frames from one
/// <see cref="FrameConnection"/> to another over loopback TCP, plaintext (the baseline) against the encrypted channel, measured in the
/// same run. No disk and no hashing, so the ratio is the transport's own; the end-to-end cost is bench/transfer.sh's.
/// </summary>
[SimpleJob(warmupCount: 1, iterationCount: 5)]
[Config(typeof(BenchConfig))]
public class TransportBenchmarks
{
    public const long Length = 256L * 1024 * 1024;
    private const int Block = 128 * 1024;
    private readonly byte[] _payload = new byte[Block];
    private Pair _plain = null!, _tls = null!;

    private sealed class Pair : IAsyncDisposable
    {
        private readonly NodeKey _a = NodeKey.Generate(), _b = NodeKey.Generate();
        private readonly TransportSecurity _sa, _sb;
        private readonly CancellationTokenSource _stop = new();
        public FrameConnection Sender = null!, Receiver = null!;
        private Task _receive = Task.CompletedTask;
        private long _received;
        private TaskCompletionSource _done = new();
        private long _target;

        public Pair(bool encrypt)
        {
            _sa = new TransportSecurity(_a, null, encrypt);
            _sb = new TransportSecurity(_b, null, encrypt);
        }

        public async Task OpenAsync()
        {
            using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(1);
            var accepting = Task.Run(async () => await FrameConnection.AcceptAsync(await listener.AcceptAsync(), _sb, CancellationToken.None));
            Sender = await FrameConnection.ConnectAsync((IPEndPoint)listener.LocalEndPoint!, TimeSpan.FromSeconds(10), CancellationToken.None, _sa);
            Receiver = await accepting;
            _receive = Receiver.ReceiveAsync(frame =>
            {
                if (Interlocked.Add(ref _received, frame.Body.Length + FrameCodec.PrefixLength) >= Volatile.Read(ref _target)) _done.TrySetResult();
                return ValueTask.CompletedTask;
            }, _stop.Token);
        }

        public async Task SendAsync(long length, byte[] payload)
        {
            _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            long frames = length / Block;
            Volatile.Write(ref _target, Interlocked.Read(ref _received) + frames * (Block + FrameCodec.PrefixLength)); // a lower bound: each body also holds its small header
            for (long i = 0; i < frames; i++)
                await Sender.SendBlockAsync(new BlockHeader((int)(i / 8), (int)(i % 8) * Block), Block, payload, static (p, span) => p.CopyTo(span));
            await _done.Task;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await Sender.DisposeAsync();
            try { await _receive; } catch (Exception) { }
            await Receiver.DisposeAsync();
            _sa.Dispose(); _sb.Dispose(); _a.Dispose(); _b.Dispose();
        }
    }

    [GlobalSetup]
    public void Setup()
    {
        new Random(1).NextBytes(_payload);
        _plain = new Pair(encrypt: false);
        _plain.OpenAsync().GetAwaiter().GetResult();
        _tls = new Pair(encrypt: true);
        _tls.OpenAsync().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _plain.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _tls.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    [Benchmark(Baseline = true)]
    public Task Plaintext() => _plain.SendAsync(Length, _payload);

    [Benchmark]
    public Task Encrypted() => _tls.SendAsync(Length, _payload);
}
