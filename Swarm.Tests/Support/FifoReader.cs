namespace Swarm.Tests.Support;

/// <summary>A concurrent reader of a FIFO that collects every byte written into it until the writer closes it.</summary>
public sealed class FifoReader : IDisposable
{
    private readonly string _path;

    public FifoReader(string path)
    {
        _path = path;
        Bytes = Task.Factory.StartNew(() =>
        {
            using var fifo = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            using var collected = new MemoryStream();
            fifo.CopyTo(collected);
            return collected.ToArray();
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>Everything read, once the writer closed the FIFO.</summary>
    public Task<byte[]> Bytes { get; }

    /// <summary>Opens and closes the FIFO for writing when nothing did, so the reader's open() returns (with no bytes).</summary>
    public void Release()
    {
        if (Bytes.IsCompleted) return;
        try
        {
            using var writer = new FileStream(_path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1);
        }
        catch (IOException) { }
    }

    public void Dispose()
    {
        Release();
        try { Bytes.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
    }
}
