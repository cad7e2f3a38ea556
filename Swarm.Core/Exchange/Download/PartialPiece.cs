using Swarm.Core.Storage;

namespace Swarm.Core.Exchange.Download;

/// <summary>A piece being assembled in a pooled, 4 KiB-aligned buffer: its blocks, who sent each, and who contributed.</summary>
internal sealed class PartialPiece(int index, int length, int blocks)
{
    private int _returned;

    public int Index { get; } = index;
    public int Length { get; } = length;
    public AlignedBuffer Buffer { get; } = AlignedBuffer.Rent(length);
    public BlockSlot[] Blocks { get; } = new BlockSlot[blocks];
    public int ReceivedCount;
    public HashSet<PeerState> Contributors { get; } = [];
    /// <summary>Set when a peer on parole started the piece: only it may fill it.</summary>
    public PeerState? ExclusiveOwner { get; set; }

    /// <summary>The assembled bytes.</summary>
    public ReadOnlySpan<byte> Data => Buffer.Span[..Length];

    /// <summary>Gives the buffer back to the pool and its size back to the budget (once; later calls do nothing).</summary>
    public void Return(PieceBufferBudget budget)
    {
        if (Interlocked.Exchange(ref _returned, 1) != 0) return;
        AlignedBuffer.Return(Buffer);
        budget.Release(Length);
    }
}
