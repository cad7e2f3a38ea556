using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Swarm.Core.Storage;

/// <summary>
/// Native memory aligned to 4 KiB, so a piece assembled in it can be written with O_DIRECT (straight to the device,
/// no copy into the page cache). Pooled by capacity: pieces are assembled over and over in buffers of one size.
/// </summary>
public sealed unsafe class AlignedBuffer : IDisposable
{
    public const int Alignment = 4096;
    private static readonly ConcurrentDictionary<int, ConcurrentBag<AlignedBuffer>> Pool = new();
    private const int MaxPooledPerSize = 64;
    private byte* _pointer;

    private AlignedBuffer(int capacity)
    {
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)capacity, Alignment);
        Capacity = capacity;
    }

    public int Capacity { get; }
    public Span<byte> Span => _pointer == null ? throw new ObjectDisposedException(nameof(AlignedBuffer)) : new Span<byte>(_pointer, Capacity);
    /// <summary>The buffer as <see cref="Memory{T}"/>, for asynchronous reads straight into it.</summary>
    public Memory<byte> Memory => (_manager ??= new Manager(this)).Memory;

    private Manager? _manager;

    private sealed class Manager(AlignedBuffer owner) : System.Buffers.MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => owner.Span;
        public override System.Buffers.MemoryHandle Pin(int elementIndex = 0) => new(owner._pointer + elementIndex);
        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
    }

    /// <summary>A buffer of at least <paramref name="length"/> bytes (capacity rounded up to a multiple of 4 KiB).</summary>
    public static AlignedBuffer Rent(int length)
    {
        int capacity = (length + Alignment - 1) / Alignment * Alignment;
        if (Pool.TryGetValue(capacity, out var bag) && bag.TryTake(out var buffer)) return buffer;
        return new AlignedBuffer(Math.Max(capacity, Alignment));
    }

    public static void Return(AlignedBuffer buffer)
    {
        var bag = Pool.GetOrAdd(buffer.Capacity, _ => []);
        if (bag.Count < MaxPooledPerSize) bag.Add(buffer);
        else buffer.Dispose();
    }

    /// <summary>True when the span starts on a 4 KiB boundary and is a whole number of 4 KiB blocks long.</summary>
    public static bool IsDirectIoCompatible(ReadOnlySpan<byte> data, long fileOffset)
    {
        fixed (byte* p = data)
            return (nuint)p % Alignment == 0 && data.Length % Alignment == 0 && fileOffset % Alignment == 0;
    }

    private void Free()
    {
        var p = _pointer;
        _pointer = null;
        if (p != null) NativeMemory.AlignedFree(p);
    }

    public void Dispose()
    {
        Free();
        GC.SuppressFinalize(this);
    }

    ~AlignedBuffer() => Free();
}
