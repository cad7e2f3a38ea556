using System.Buffers;

namespace Swarm.Tests.Fuzz;

/// <summary>Small helpers the harnesses share: multi-segment sequences, a scratch folder for the file decoders, a scripted stream.</summary>
public static class FuzzInputs
{
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>The bytes as a sequence of two segments split at <paramref name="split"/> (as a socket's reads may cut them).</summary>
    public static ReadOnlySequence<byte> Split(ReadOnlyMemory<byte> data, int split)
    {
        split = Math.Clamp(split, 0, data.Length);
        var first = new Segment(data[..split], 0);
        var last = first.Append(data[split..]);
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private static readonly Lazy<string> ScratchFolder = new(() =>
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        string dir = Path.Combine(root, $"swarm-fuzz-{Environment.ProcessId}");
        Directory.CreateDirectory(dir);
        return dir;
    });

    /// <summary>A data directory of this process's own (in memory where /dev/shm exists), for decoders that read a file.</summary>
    public static string Scratch
    {
        get
        {
            string dir = ScratchFolder.Value;
            if (!Directory.Exists(dir)) Directory.CreateDirectory(dir); // again after DeleteScratch
            return dir;
        }
    }

    /// <summary>Writes the input as <paramref name="fileName"/> in the scratch folder and returns its path.</summary>
    public static string WriteScratch(string fileName, byte[] input)
    {
        string path = Path.Combine(Scratch, fileName);
        File.WriteAllBytes(path, input);
        return path;
    }

    /// <summary>Removes the scratch folder (end of a run).</summary>
    public static void DeleteScratch()
    {
        if (ScratchFolder.IsValueCreated)
        {
            try { Directory.Delete(ScratchFolder.Value, recursive: true); }
            catch (IOException) { }
        }
    }
}

/// <summary>
/// The other end of a connection, played from a script: reads get the script's bytes from <paramref name="start"/> on, at most
/// <paramref name="maxRead"/> a call (0 at its end: the peer hung up); writes are kept (<see cref="Written"/>).
/// <see cref="BeforeRead"/> may patch the script with what only the other end could know (a proof over the nonce this side
/// just sent). Everything completes synchronously, so an async reader over it runs to its end in the caller's thread.
/// </summary>
public sealed class ScriptedStream(byte[] script, int maxRead = int.MaxValue, int start = 0) : DuplexStream
{
    private readonly MemoryStream _written = new();
    private int _position = start;

    /// <summary>The bytes the reader gets (patched in place, grown by <see cref="Patch"/>).</summary>
    public byte[] Script { get; private set; } = script;

    /// <summary>Where the script's content begins (bytes before it are the harness's own, never read).</summary>
    public int Start { get; } = start;

    /// <summary>Called before each read with this stream.</summary>
    public Action<ScriptedStream>? BeforeRead { get; set; }

    /// <summary>What the code under test wrote.</summary>
    public ReadOnlySpan<byte> Written => _written.GetBuffer().AsSpan(0, (int)_written.Length);

    /// <summary>Writes <paramref name="bytes"/> into the script at <paramref name="offset"/> (from <see cref="Start"/>), growing it when it is shorter.</summary>
    public void Patch(int offset, ReadOnlySpan<byte> bytes)
    {
        offset += Start;
        if (offset + bytes.Length > Script.Length)
        {
            byte[] grown = Script;
            Array.Resize(ref grown, offset + bytes.Length);
            Script = grown;
        }
        bytes.CopyTo(Script.AsSpan(offset));
    }

    public override int Read(Span<byte> buffer)
    {
        BeforeRead?.Invoke(this);
        int n = Math.Min(Math.Min(buffer.Length, maxRead), Script.Length - _position);
        Script.AsSpan(_position, n).CopyTo(buffer);
        _position += n;
        return n;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(Read(buffer.AsSpan(offset, count)));
    public override void Write(ReadOnlySpan<byte> buffer) => _written.Write(buffer);
    public override void Write(byte[] buffer, int offset, int count) => _written.Write(buffer, offset, count);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _written.Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        _written.Write(buffer, offset, count);
        return Task.CompletedTask;
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>A stream both read and written, with no position: what a socket looks like to the code under test.</summary>
public abstract class DuplexStream : Stream
{
    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
