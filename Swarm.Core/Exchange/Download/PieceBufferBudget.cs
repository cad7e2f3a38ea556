namespace Swarm.Core.Exchange.Download;

/// <summary>
/// Memory for pieces being assembled and verified, across all downloads of a node (<see cref="EngineOptions.MaxPieceBufferBytes"/>).
/// </summary>
internal sealed class PieceBufferBudget(long limit)
{
    private long _bytes;

    /// <summary>Bytes reserved now.</summary>
    public long InUse => Interlocked.Read(ref _bytes);

    /// <summary>Reserves <paramref name="bytes"/> unless that would pass the limit.</summary>
    public bool TryReserve(int bytes)
    {
        if (Interlocked.Add(ref _bytes, bytes) <= limit) return true;
        Interlocked.Add(ref _bytes, -bytes);
        return false;
    }

    /// <summary>Reserves past the limit if need be: a download that holds no buffer may always start one piece.</summary>
    public void ForceReserve(int bytes) => Interlocked.Add(ref _bytes, bytes);

    public void Release(int bytes) => Interlocked.Add(ref _bytes, -bytes);
}
